"""Foundation Agents (arXiv 2504.01990): the survey's modular agent, as :mod:`reprolab.agents`, and its
arguments as ablations on exact offline tasks.

    from reprolab.papers.foundation_agents import math_tasks, solve_math
    from reprolab.llm import load_llm
    llm = load_llm("qwen2.5-coder-0.5b")
    solve_math(llm, math_tasks(1)[0], "code")      # {'correct': True, 'tool_calls': 1, 'calls': 2, ...}

The agent framework itself is the shared room :mod:`reprolab.agents` (README: the survey-to-classes map).
"""

from .ablations import (LEARNING_ARMS, MEMORY_ARMS, SAFETY_ARMS, TOOL_ARMS, WORLD_ARMS, CompleteFunction, answer_from_memory,
                        memory_for, run_injection, solve_code, solve_math, solve_sokoban, world_model_accuracy)
from .tasks import (CodeTask, InjectionTask, MemoryQA, QATask, humaneval_tasks, injection_suite, injection_tools, math_tasks,
                    memory_qa, normalise, sokoban_tasks)

__all__ = ["CodeTask", "CompleteFunction", "InjectionTask", "LEARNING_ARMS", "MEMORY_ARMS", "MemoryQA", "QATask", "SAFETY_ARMS",
           "TOOL_ARMS", "WORLD_ARMS", "answer_from_memory", "humaneval_tasks", "injection_suite", "injection_tools", "math_tasks",
           "memory_for", "memory_qa", "normalise", "run_injection", "solve_code", "solve_math", "solve_sokoban", "sokoban_tasks",
           "world_model_accuracy"]
