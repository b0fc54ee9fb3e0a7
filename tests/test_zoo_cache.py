"""Hub weight sources without network: files already in the Hugging Face / torch hub caches load."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import torch


def test_weights_found_in_hub_caches_load_offline(tmp_path):
    import timm
    import torchvision
    from safetensors.torch import save_file

    hf = tmp_path / "hf"
    snap = hf / "models--timm--mobilenetv2_100.ra_in1k" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (hf / "models--timm--mobilenetv2_100.ra_in1k" / "refs").mkdir()
    (hf / "models--timm--mobilenetv2_100.ra_in1k" / "refs" / "main").write_text("abc123")
    mnet = timm.create_model("mobilenetv2_100")
    save_file({k: v.contiguous() for k, v in mnet.state_dict().items()}, snap / "model.safetensors")

    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    weights = torchvision.models.SqueezeNet1_1_Weights.DEFAULT
    squeeze = torchvision.models.squeezenet1_1()
    torch.save(squeeze.state_dict(), ckpt / os.path.basename(weights.url))

    script = textwrap.dedent("""
        import sys, torch, visionzoo
        from visionzoo.zoo import list_models
        m = visionzoo.load_model("mobilenet_v2")
        print("MNET", m.zoo_spec.weights, float(m.classifier.weight.sum()))
        s = visionzoo.load_model("torchvision:squeezenet1_1")
        print("SQUEEZE", s.zoo_spec.weights, len(s.zoo_spec.labels))
        print("OFFLINE", [r.name for r in list_models("mobilenet_v2") if r.offline])
    """)
    env = {**os.environ, "HF_HUB_CACHE": str(hf), "TORCH_HOME": str(tmp_path / "torch"), "VISIONZOO_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    path, total = out["MNET"].rsplit(" ", 1)
    assert path == str(snap / "model.safetensors")
    assert abs(float(total) - float(mnet.classifier.weight.detach().sum())) < 1e-3
    assert out["SQUEEZE"].startswith(str(ckpt)) and out["SQUEEZE"].endswith(" 1000")
    assert "mobilenet_v2" in out["OFFLINE"]
