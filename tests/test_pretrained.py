from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

from trainer.encoder import build_encoder, input_normalisation, load_lite_classifier, map_lite_state_dict  # noqa: E402

DAISY = Path(__file__).parent / "data" / "daisy.jpg"
DAISY_CLASS = 985  # ImageNet 'daisy'


def test_packaged_lite0_weights_map_by_shape_and_predict_a_daisy():
    model = load_lite_classifier("tf_efficientnet_lite0").eval()
    mean, std = input_normalisation("tf_efficientnet_lite0")
    rgb = cv2.cvtColor(cv2.imread(str(DAISY)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    x = torch.from_numpy(((rgb - mean) / std).transpose(2, 0, 1)[None].astype(np.float32))
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert int(probs.argmax()) == DAISY_CLASS
    assert float(probs[DAISY_CLASS]) > 0.5


def test_mapping_refuses_a_shape_mismatch():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    bad = {k: v for k, v in model.state_dict().items()}
    first = next(iter(bad))
    bad[first] = torch.zeros(1)
    with pytest.raises(ValueError, match="shape mismatch"):
        map_lite_state_dict(bad, model)


def test_pretrained_encoder_carries_the_packaged_weights():
    enc = build_encoder("tf_efficientnet_lite0", pretrained=True)
    cls = load_lite_classifier("tf_efficientnet_lite0")
    torch.testing.assert_close(enc.state_dict()["conv_stem.weight"], cls.state_dict()["conv_stem.weight"])
