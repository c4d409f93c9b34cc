"""guanaco-arena: generate, judge, rate and release chatbot tournaments the way the QLoRA paper did."""

__version__ = "0.1.0"
