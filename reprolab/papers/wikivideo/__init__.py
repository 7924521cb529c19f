"""WikiVideo (arXiv 2504.00939): Collaborative Article Generation (CAG) from several videos.

    from reprolab.llm import load_llm
    from reprolab.papers.wikivideo import CollaborativeArticleGenerator, VideoFrameDescriber, write_articles
    vlm = load_llm("http://127.0.0.1:8000/v1", model="Qwen/Qwen2.5-VL-7B-Instruct")     # any OpenAI-compatible VLM
    llm = load_llm("qwen2.5-coder-1.5b")
    cag = CollaborativeArticleGenerator(VideoFrameDescriber(vlm), reasoner=llm, writer=llm, max_iterations=2)
    article = cag.generate("Project Natick", ["a.mp4", "b.mp4"])
    write_articles("articles.json", {"Project Natick": article})     # {event: {"query", "article": "<lead>...</lead>"}}

The study (``reprolab run wikivideo``) runs the loop on synthetic multi-camera events with perfect symbolic
perception (:mod:`.events`); README: what it tests and what it does not.
"""

from .cag import (DEFAULT_PROMPT, GENERIC_QUESTIONS, REASONER_SCHEMA, Article, CollaborativeArticleGenerator, Describer,
                  FixedQuestionsGenerator, ReasonerTurn, extract_lead, load_prompt, video_id, writer_material)
from .describers import SymbolicDescriber, VideoFrameDescriber, sample_frames
from .evaluation import ArticleRecord, ClaimSupportJudge, lead_text, read_articles, rouge_scores, write_articles
from .events import (Fact, SyntheticEvent, SyntheticVideo, fact_recall, fact_recalled, hallucinated_sentences, hallucination_rate,
                     make_events, reference_lead, sentences, union_visible)

__all__ = ["Article", "ArticleRecord", "ClaimSupportJudge", "CollaborativeArticleGenerator", "DEFAULT_PROMPT", "Describer", "Fact",
           "FixedQuestionsGenerator", "GENERIC_QUESTIONS", "REASONER_SCHEMA", "ReasonerTurn", "SymbolicDescriber", "SyntheticEvent",
           "SyntheticVideo", "VideoFrameDescriber", "extract_lead", "fact_recall", "fact_recalled", "hallucinated_sentences",
           "hallucination_rate", "lead_text", "load_prompt", "make_events", "read_articles", "reference_lead", "rouge_scores",
           "sample_frames", "sentences", "union_visible", "video_id", "write_articles", "writer_material"]
