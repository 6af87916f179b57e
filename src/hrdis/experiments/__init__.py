"""Experiment tooling on top of the library: the resumable benchmark (``bench``), parameter sweeps
(``ablate``), seed diversity (``diversity``), the performance report (``perf``) and the image-quality
measures they record (``perceptual``). Nothing in the core imports this package."""
