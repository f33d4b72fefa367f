"""Generate `protocol/messages/` from Kafka's JSON message specs.

Run as `python3 -m redshank.tools.codegen [--spec-dir DIR] [--out DIR]`.
"""

from redshank.tools.codegen.generate import default_spec_dir, generate, main

__all__ = ["default_spec_dir", "generate", "main"]
