"""Face models that need a download (for users with network), and the offline message."""
from __future__ import annotations

# facenet-pytorch's InceptionResnetV1 weights (VGGFace2 / CASIA-WebFace), fetched from its GitHub releases.
HUB_MODELS = {
    "facenet_vggface2": "pip install facenet-pytorch; weights 20180402-114759-vggface2.pt from github.com/timesler/facenet-pytorch releases",
    "facenet_casia": "pip install facenet-pytorch; weights 20180408-102900-casia-webface.pt from github.com/timesler/facenet-pytorch releases",
}


def hub_model_note(name: str) -> str:
    """What to say for a face model name that is not offline (the zoo's offline-message convention)."""
    from .detectors import DETECTORS

    if name in HUB_MODELS:
        return (f"{name} needs a download ({HUB_MODELS[name]}), which is not possible offline; "
                f"the offline face models are dlib's (detectors: {', '.join(DETECTORS)})")
    return f"unknown face model {name!r}; offline detectors: {', '.join(DETECTORS)}; with network: {', '.join(HUB_MODELS)}"
