"""Convert pytorch-fid's FID Inception weights to safetensors for `cm eval --fid-weights`.

    # once, on a machine with network access:
    curl -LO https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    python tools/fid_weights.py pt_inception-2015-12-05-6726825d.pth inception-fid.safetensors

Needs torch and safetensors (`pip install torch safetensors`). The tensors keep their names and
values (float32); only the container changes, because the .pth is a Python pickle that a Rust
program should not execute. The output is never written over an existing file.
"""
import hashlib, os, sys

import torch
from safetensors.torch import save_file

# SHA-256 prefix pytorch-fid puts in the file name (torch.hub's check_hash convention).
HASH_PREFIX = '6726825d'


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    if os.path.exists(dst):
        sys.exit(f'{dst} exists; choose another output name (nothing was written)')
    digest = hashlib.sha256(open(src, 'rb').read()).hexdigest()
    if not digest.startswith(HASH_PREFIX):
        print(f'warning: {src} has SHA-256 {digest[:16]}…, pytorch-fid\'s file starts with {HASH_PREFIX}',
              file=sys.stderr)
    sd = torch.load(src, map_location='cpu', weights_only=True)
    sd = {k: v.float().contiguous() for k, v in sd.items() if torch.is_tensor(v) and v.is_floating_point()}
    tmp = dst + '.partial'
    save_file(sd, tmp, metadata={'source': os.path.basename(src), 'sha256': digest})
    os.replace(tmp, dst)
    print(f'wrote {dst}: {len(sd)} tensors', file=sys.stderr)


if __name__ == '__main__':
    main()
