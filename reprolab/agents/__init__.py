"""The agent room: the survey's agent loop as typed, swappable modules (Foundation Agents, arXiv 2504.01990).

    from reprolab.agents import Agent, ReAct, ToolBox, Tool, AgentMemory, Budget
    agent = Agent(ReAct(), llm=load_llm("qwen2.5-coder-0.5b"), tools=ToolBox([Tool.from_function(add)]))
    res = agent.run("What is 2 + 3?", budget=Budget(max_calls=6), trace="runs/trace.jsonl")

Modules: :mod:`.state` (the loop's types and protocols, MentalState, default perception /
learning / reward / emotion), :mod:`.loop` (Agent, RunResult), :mod:`.memory` (working window,
long-term store, BM25 / MiniLM), :mod:`.world_models` (simulator clone, LLM, lookahead),
:mod:`.policies` (ReAct, CodeAct, ChainOfThought, LogProbChoice, Lookahead, PlanThenAct),
:mod:`.reflexion`, :mod:`.multi` (Chain, ManagerWorkers, Vote), :mod:`.tools` (JSON-Schema tools,
sandbox, permissions, spotlighting), :mod:`.structured` (validated JSON with one repair),
:mod:`.native` (server-side tool calling), :mod:`.envs` (Gymnasium-style environments),
:mod:`.budget` (budgets, metered models, JSONL traces).
"""

from .budget import Budget, BudgetExceeded, Meter, MeteredLLM, Trace
from .envs import Env, QuestionEnv, TextEnv
from .loop import Agent, RunResult
from .memory import (AgentMemory, BM25Retriever, LongTermMemory, MemoryRecord, MiniLMRetriever, WorkingMemory, approx_tokens,
                     llm_summariser)
from .multi import Chain, ManagerWorkers, MultiResult, Vote
from .native import NativeToolCalling, ToolCallingClient
from .policies import ChainOfThought, CodeAct, Context, Lookahead, LogProbChoice, PlanThenAct, ReAct, final_answer
from .reflexion import TrialsResult, reflect, reflexion, resample
from .server import llama_server
from .state import (Action, DefaultLearning, Emotion, EmotionState, ExtrinsicReward, Learning, Memory, MentalState, Observation,
                    Perception, Prediction, Reasoning, Reward, TextPerception, ValenceEmotion, WorldModel)
from .structured import FailureCounter, Structured, ask_structured, check_structured, extract_json
from .tools import (PermissionDenied, Permissions, Tool, ToolBox, ToolResult, function_schema, python_tool, spotlight,
                    spotlight_instructions, validate)
from .world_models import LLMWorldModel, SimulatorWorldModel, lookahead, next_state_accuracy

__all__ = [
    "Action", "Agent", "AgentMemory", "BM25Retriever", "Budget", "BudgetExceeded", "Chain", "ChainOfThought", "CodeAct", "Context",
    "DefaultLearning", "Emotion", "EmotionState", "Env", "ExtrinsicReward", "FailureCounter", "LLMWorldModel", "Learning",
    "LogProbChoice", "LongTermMemory", "Lookahead", "ManagerWorkers", "Memory", "MemoryRecord", "MentalState", "Meter", "MeteredLLM",
    "MiniLMRetriever", "MultiResult", "NativeToolCalling", "Observation", "Perception", "PermissionDenied", "Permissions", "PlanThenAct",
    "Prediction", "QuestionEnv", "ReAct", "Reasoning", "Reward", "RunResult", "SimulatorWorldModel", "Structured", "TextEnv",
    "TextPerception", "Tool", "ToolBox", "ToolCallingClient", "ToolResult", "Trace", "TrialsResult", "ValenceEmotion", "Vote",
    "WorkingMemory", "WorldModel", "approx_tokens", "ask_structured", "check_structured", "extract_json", "final_answer",
    "function_schema", "llama_server", "llm_summariser", "lookahead", "next_state_accuracy", "python_tool", "reflect", "reflexion", "resample", "spotlight",
    "spotlight_instructions", "validate",
]
