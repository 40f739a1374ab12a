"""fixture_io.py - what the fixture writers in tools/ share.

save_safetensors writes a safetensors file whose bytes do not change from run to
run: the safetensors library writes __metadata__ from a hash map, so the header is
rewritten (same length) with its keys sorted.
"""
import json
import struct

from safetensors.torch import save


def save_safetensors(tensors, path, metadata):
    """safetensors.torch.save, then the header's __metadata__ keys in sorted order."""
    blob = save(tensors, metadata=metadata)
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    fixed = {"__metadata__": dict(sorted(header.pop("__metadata__").items()))}
    fixed.update(header)
    text = json.dumps(fixed, separators=(",", ":")).encode()
    assert len(text) <= n
    with open(path, "wb") as f:
        f.write(blob[:8] + text + b" " * (n - len(text)) + blob[8 + n:])
