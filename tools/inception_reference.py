"""Reference features of pytorch-fid's FID Inception network for the Rust port's test.

pytorch-fid (PyPI `pytorch-fid`, `pytorch_fid/inception.py`) builds its network with
`fid_inception_v3()`, which downloads the real weights. Here that download is replaced by
deterministic pseudo-random weights, the rule `src/eval/inception.rs::synthetic_weights`
implements bit for bit: tensor k of the sorted conv/bn names, element j,
u = SplitMix64's output mix of ((k + 1)*2**32 + j)*0x9E3779B97F4A7C15, top 53 bits, minus 1/2, then conv weights u*sqrt(36/fan_in),
bn gamma 1 + 0.4u, beta 0.05u, running mean 0.05u, running var 1 + 0.5(u + 1/2).
Everything else (the architecture, the FID patches, resizing, scaling) is pytorch-fid's own
code, unchanged. The features of two test images go to tests/fixtures/inception_reference.json.

    python -m venv v && v/bin/pip install torch torchvision pytorch-fid safetensors numpy
    v/bin/python tools/inception_reference.py [--weights-out W.safetensors]

`--weights-out` also writes the synthetic weights as safetensors, so `cm eval --fid-weights W`
can be compared with pytorch-fid by hand.
"""
import argparse, json, sys
import numpy as np
import torch
import torchvision
import pytorch_fid
import pytorch_fid.inception as pi


def unit(n, k):
    """SplitMix64 of (k + 1)*2**32 + j, top 53 bits as a uniform in [-1/2, 1/2)."""
    with np.errstate(over='ignore'):
        z = (np.uint64(k + 1) << np.uint64(32)) + np.arange(n, dtype=np.uint64)
        z = z * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53 - 0.5


def synthetic(keys_shapes):
    """name -> float32 array, for the conv/bn tensors of the network (sorted names)."""
    conv = {k: s for k, s in keys_shapes.items()
            if k.endswith(('.conv.weight', '.bn.weight', '.bn.bias', '.bn.running_mean', '.bn.running_var'))}
    out = {}
    for k, name in enumerate(sorted(conv)):
        shape = conv[name]
        u = unit(int(np.prod(shape)), k)
        if name.endswith('conv.weight'):
            fan_in = int(np.prod(shape[1:]))
            v = u * np.sqrt(36.0 / fan_in)
        elif name.endswith('bn.weight'):
            v = 1.0 + 0.4 * u
        elif name.endswith('bn.bias'):
            v = 0.05 * u
        elif name.endswith('running_mean'):
            v = 0.05 * u
        else:
            v = 1.0 + 0.5 * (u + 0.5)
        out[name] = v.astype(np.float32).reshape(shape)
    return out


def images():
    """Two test images in [0, 1] as pytorch-fid gets them from PNGs (u8 / 255): a 28x28 grey
    one repeated to RGB (as PIL's convert('RGB') does) and a 20x33 RGB one."""
    i, j = np.meshgrid(np.arange(28), np.arange(28), indexing='ij')
    g = (i * 37 + j * 11 + (i * j) % 7 * 19) % 256
    c, i, j = np.meshgrid(np.arange(3), np.arange(20), np.arange(33), indexing='ij')
    rgb = (c * 71 + i * 13 + j * 29 + (i * j + c) % 5 * 41) % 256
    return [('grey28', g.astype(np.uint8)[None]), ('rgb20x33', rgb.astype(np.uint8))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default='tests/fixtures/inception_reference.json')
    ap.add_argument('--weights-out')
    a = ap.parse_args()
    torch.manual_seed(0)
    captured = {}

    def fake_download(url, progress=True):
        # Called by fid_inception_v3() inside InceptionV3(): hand it synthetic weights for
        # exactly the tensors the model it just built has.
        m = pi._inception_v3(num_classes=1008, aux_logits=False, weights=None)
        m.Mixed_5b = pi.FIDInceptionA(192, pool_features=32)
        m.Mixed_5c = pi.FIDInceptionA(256, pool_features=64)
        m.Mixed_5d = pi.FIDInceptionA(288, pool_features=64)
        m.Mixed_6b = pi.FIDInceptionC(768, channels_7x7=128)
        m.Mixed_6c = pi.FIDInceptionC(768, channels_7x7=160)
        m.Mixed_6d = pi.FIDInceptionC(768, channels_7x7=160)
        m.Mixed_6e = pi.FIDInceptionC(768, channels_7x7=192)
        m.Mixed_7b = pi.FIDInceptionE_1(1280)
        m.Mixed_7c = pi.FIDInceptionE_2(2048)
        sd = m.state_dict()
        syn = synthetic({k: tuple(v.shape) for k, v in sd.items()})
        for k in sd:
            if k in syn:
                sd[k] = torch.from_numpy(syn[k])
        captured.update(syn)
        return sd

    pi.load_state_dict_from_url = fake_download
    net = pi.InceptionV3([pi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    cases = []
    with torch.no_grad():
        for name, u8 in images():
            x = torch.from_numpy(u8.astype(np.float32) / 255.0)
            x = x.expand(3, -1, -1) if x.shape[0] == 1 else x
            f = net(x[None])[0].reshape(-1).double().numpy()
            cases.append({'name': name, 'shape': list(u8.shape), 'u8': u8.reshape(-1).tolist(),
                          'features': [float(f'{v:.7g}') for v in f]})
            print(name, 'features: mean %.6f std %.6f' % (f.mean(), f.std()), file=sys.stderr)
    doc = {'what': 'pytorch-fid InceptionV3 (2048-d pool features) with the synthetic weights of tools/inception_reference.py',
           'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__,
                        'pytorch_fid': getattr(pytorch_fid, '__version__', '?')},
           'cases': cases}
    with open(a.out, 'w') as fh:
        json.dump(doc, fh)
    if a.weights_out:
        from safetensors.numpy import save_file
        save_file(captured, a.weights_out)


if __name__ == '__main__':
    main()
