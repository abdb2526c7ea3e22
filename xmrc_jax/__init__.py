"""xmrc_jax: cross-lingual reading comprehension and retrieval QA in JAX / Flax."""

import os as _os

# The package never needs PyTorch; transformers' advice that it is missing ("PyTorch was not
# found. Models won't be available ...") is noise on every run. Only its advisory warnings are
# off (set TRANSFORMERS_NO_ADVISORY_WARNINGS= , empty, before importing to see them).
_os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

__version__ = "0.3.0"
