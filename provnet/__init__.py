"""provnet: infrastructure-as-code and video-conference orchestration for a province's network."""

__version__ = "0.1.0"
