"""IGPG, Instruction-Guided autoregressive neural network Parameter Generation (arXiv 2504.02012): a Gumbel
VQ-VAE over chunks of weights and a GPT-2 prior conditioned on data-set and architecture embeddings.

    from reprolab.papers.igpg import IGPG, IGPGConfig, TrainingNetwork, save_generated, load_generated
    gen = IGPG(IGPGConfig())
    gen.fit([TrainingNetwork(state, template, data_embedding), ...])
    state = gen.generate(data_embedding, architecture=template)[0]
"""

from .igpg import IGPG, FitReport, IGPGConfig, TrainingNetwork, load_generated, save_generated
from .instructions import EfficientNetImageEncoder, PixelImageEncoder, dataset_embedding, describe_architecture
from .integrations import load_lora, lora_state
from .prior import ConditionalPrior, PriorConfig, mix_positions, train_prior
from .weights import Manifest, TensorEntry, chunks_to_state_dict, load_into, named_tensors, state_dict_to_chunks

__all__ = ["ConditionalPrior", "EfficientNetImageEncoder", "FitReport", "IGPG", "IGPGConfig", "Manifest", "PixelImageEncoder",
           "PriorConfig", "TensorEntry", "mix_positions", "TrainingNetwork", "chunks_to_state_dict", "dataset_embedding", "describe_architecture",
           "load_generated", "load_into", "load_lora", "lora_state", "named_tensors", "save_generated", "state_dict_to_chunks",
           "train_prior"]
