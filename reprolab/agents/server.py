"""The loopback OpenAI-compatible server lives in the language-model room (:mod:`reprolab.llm.server`);
re-exported here because agents that talk HTTP (ours and the peers') are its main users."""

from ..llm.server import llama_server

__all__ = ["llama_server"]
