import pytest

torch = pytest.importorskip("torch")

from trainer.blocks import SelectiveReceptionFieldBlock, SupervisionGuidedAttentionBlock  # noqa: E402
from trainer.config import DECODER_PRESETS, DecoderConfig, ModelConfig  # noqa: E402
from trainer.model import DefocusDepthNet, DeployableNet  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def realtime_net():
    torch.manual_seed(0)
    return DefocusDepthNet(ModelConfig.preset("tf_efficientnet_lite0", "realtime")).eval()


@pytest.mark.parametrize("size", [(320, 320), (256, 384)])
def test_training_outputs_have_input_size(realtime_net, size):
    out = realtime_net(torch.randn(1, 3, *size))
    assert out.defocus.shape == (1, 1, *size)
    assert out.depth.shape == (1, 1, *size)
    assert len(out.defocus_sides) == 5 and len(out.depth_sides) == 5
    assert all(s.shape == (1, 1, *size) for s in out.defocus_sides + out.depth_sides)


@pytest.mark.parametrize("preset", sorted(DECODER_PRESETS))
def test_both_decoder_presets_build_and_run(preset):
    net = DefocusDepthNet(ModelConfig.preset("tf_efficientnet_lite0", preset)).eval()
    with torch.no_grad():
        in_focus, depth = net.predict(torch.randn(1, 3, 64, 96))
    assert in_focus.shape == depth.shape == (1, 1, 64, 96)
    assert float(in_focus.min()) >= 0 and float(in_focus.max()) <= 1


@pytest.mark.parametrize("backbone", ["vgg19_bn", "resnext101_32x8d", "tf_efficientnet_lite2"])
def test_other_backbones_give_five_levels(backbone):
    net = DefocusDepthNet(ModelConfig.preset(backbone, "realtime"))
    assert tuple(net.encoder.feature_info.reduction()[-5:]) == (2, 4, 8, 16, 32)


def test_every_parameter_receives_a_gradient(realtime_net):
    net = DefocusDepthNet(ModelConfig.preset("tf_efficientnet_lite0", "realtime")).train()
    out = net(torch.randn(2, 3, 64, 64))
    loss = out.defocus.mean() + out.depth.mean() + sum(s.mean() for s in out.defocus_sides + out.depth_sides)
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []


def test_srfb_branch_weights_sum_to_one_per_channel():
    torch.manual_seed(1)
    block = SelectiveReceptionFieldBlock(16, (3, 5, 7)).eval()
    x = torch.randn(2, 16, 20, 24)
    w = block.branch_weights(block.branches(x))
    assert w.shape == (2, 4, 16)  # the original feature plus three chained convolutions
    torch.testing.assert_close(w.sum(dim=1), torch.ones(2, 16))
    assert block(x).shape == x.shape


def test_srfb_chain_grows_kernel_and_dilation_together():
    block = SelectiveReceptionFieldBlock(8, (3, 5, 7), separable=False)
    convs = [m[0] for m in block.chain]
    assert [(c.kernel_size[0], c.dilation[0]) for c in convs] == [(3, 3), (5, 5), (7, 7)]


def test_sab_attention_lies_in_unit_interval():
    torch.manual_seed(2)
    sab = SupervisionGuidedAttentionBlock(8).eval()
    d, z = torch.randn(2, 1, 16, 16) * 20, torch.randn(2, 1, 16, 16) * 20
    with torch.no_grad():
        a = sab.attention(d, z)
    assert a.shape == (2, 1, 16, 16)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    feats = torch.ones(2, 4, 16, 16)
    torch.testing.assert_close(sab(feats, d, z), a.expand(2, 4, 16, 16))


def test_deployable_net_matches_manual_preprocessing(realtime_net):
    from trainer.model import normalise_rgb

    frames = torch.randint(0, 256, (1, 64, 96, 3), dtype=torch.uint8)
    with torch.no_grad():
        got_f, got_d = DeployableNet(realtime_net)(frames)
        rgb = frames.flip(-1).permute(0, 3, 1, 2).float() / 255
        want_f, want_d = realtime_net.predict(normalise_rgb(rgb, "tf_efficientnet_lite0"))
    torch.testing.assert_close(got_f, want_f, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_d, want_d, atol=1e-5, rtol=1e-4)


def test_config_round_trips_and_rejects_bad_values():
    cfg = ModelConfig.preset("tf_efficientnet_lite2", "paper")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        DecoderConfig(widths=(8, 8, 8))
    with pytest.raises(ValueError):
        ModelConfig(backbone="resnet9000")
