"""The shared contract every compression method passes on both families (a conv U-Net and a
transformer: the ``family`` fixture), and what is special to each.

A new torch method adds a config, a size measure and a three-line test class; a new ONNX-side
method a config and a class of :class:`OnnxMethodContract`.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from wxmodels.compress import get_method
from wxmodels.compress.cluster import ClusterConfig
from wxmodels.compress.common import leaf_layers, weight_layers
from wxmodels.compress.depth import DepthConfig
from wxmodels.compress.distill import DistillConfig
from wxmodels.compress.dynamic import DynamicConfig
from wxmodels.compress.int8 import Int8Config
from wxmodels.compress.lowrank import LowRankConfig
from wxmodels.compress.prune import PruneConfig
from wxmodels.compress.qat import QatConfig
from wxmodels.compress.structured import StructuredConfig
from wxmodels.export.onnx import OrtForecaster, export_onnx, onnx_parity
from wxmodels.export.packing import pack_onnx, unpack_onnx
from wxmodels.nets import load_forecaster, save_forecaster
from wxmodels.nets.layers import ConvBlock, LowRankConv2d, LowRankLinear
from wxmodels.nets.transformer import Attention, Mlp


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def layer_weights(m):
    """The weights of the core's conv and linear layers (not norms, biases, embeddings)."""
    return [layer.weight for _, unit in weight_layers(m) for layer in leaf_layers(unit)]


def n_nonzero(m):
    return sum(int((p != 0).sum()) for p in layer_weights(m))


def max_distinct_per_layer(m):
    return max(len(torch.unique(p.detach())) for p in layer_weights(m) if p.numel() > 16)


class MethodContract:
    """Shapes kept, finite outputs, size down, config JSON round trip, ONNX export + parity,
    and a save/load round trip through the architecture overrides."""

    config: object
    measure = staticmethod(n_params)

    def _apply(self, teacher, ctx):
        return get_method(self.config).apply(copy.deepcopy(teacher), self.config, ctx=ctx)

    def test_contract(self, teacher, ctx, probe, tmp_path):
        model = self._apply(teacher, ctx).eval()
        state, tm = probe
        with torch.no_grad():
            ref = teacher(torch.from_numpy(state), torch.from_numpy(tm))
            out = model(torch.from_numpy(state), torch.from_numpy(tm))
        assert out.shape == ref.shape
        valid = torch.from_numpy(ctx.fields.valid)
        assert torch.isfinite(out[:, :, valid]).all()
        assert torch.isnan(out[:, :, ~valid]).all()
        assert self.measure(model) < self.measure(teacher)
        cfg_type = type(self.config)
        assert cfg_type.model_validate_json(self.config.model_dump_json()) == self.config
        path = export_onnx(model, tmp_path / "m.onnx")
        assert onnx_parity(model, path, state, tm) < 1e-4
        # the deployable artifact (the pack) is smaller than the teacher's and unpacks exactly
        packed = pack_onnx(path, tmp_path / "m.wxpack")
        assert unpack_onnx(tmp_path / "m.wxpack") == path.read_bytes()
        t_onnx = export_onnx(teacher, tmp_path / "t.onnx")
        assert packed["bytes"] < pack_onnx(t_onnx, tmp_path / "t.wxpack")["bytes"]
        save_forecaster(model, tmp_path / "ckpt")
        again = load_forecaster(tmp_path / "ckpt")
        with torch.no_grad():
            torch.testing.assert_close(
                again(torch.from_numpy(state), torch.from_numpy(tm)), out, equal_nan=True
            )


class TestPrune(MethodContract):
    config = PruneConfig(amount=0.6, steps=2, finetune_epochs=1)
    measure = staticmethod(n_nonzero)

    def test_reaches_the_sparsity(self, teacher, ctx):
        m = self._apply(teacher, ctx)
        w = layer_weights(m)
        zeros = sum(int((p == 0).sum()) for p in w) / sum(p.numel() for p in w)
        assert zeros == pytest.approx(0.6, abs=0.01)


class TestStructured(MethodContract):
    config = StructuredConfig(amount=0.5, finetune_epochs=1)

    def test_really_removes_channels(self, teacher, ctx, family):
        m = self._apply(teacher, ctx)
        for fqn, blk in m.core.named_modules():
            if isinstance(blk, ConvBlock):
                assert blk.conv1.conv.out_channels == m.spec.overrides[fqn]["mid"]
                assert blk.conv2.conv.in_channels == blk.conv1.conv.out_channels
            if isinstance(blk, Attention):  # whole heads go: 4 -> 2
                assert blk.heads == m.spec.overrides[fqn]["heads"] == 2
                assert blk.qkv.out_features == 3 * 2 * blk.head_dim
                assert blk.proj.in_features == 2 * blk.head_dim
            if isinstance(blk, Mlp):  # 32 -> 16 inner channels
                assert blk.fc1.out_features == blk.fc2.in_features == 16
                assert m.spec.overrides[fqn]["mid"] == 16
        if family == "unet":
            assert m.core.enc[0].conv1.conv.out_channels == 4  # 8 -> 4
        else:
            assert sum(isinstance(b, Attention) for b in m.core.modules()) == 4


class TestLowRank(MethodContract):
    config = LowRankConfig(ratio=0.25, finetune_epochs=1)

    def test_factorises(self, teacher, ctx):
        m = self._apply(teacher, ctx)
        lr = [mod for mod in m.modules() if isinstance(mod, LowRankConv2d | LowRankLinear)]
        assert lr and all(x.first.weight.shape[0] == x.second.weight.shape[1] for x in lr)


class TestDistill(MethodContract):
    config = DistillConfig(width=4, depth=1, epochs=2, rollout_epochs=1, rollout_steps=2)

    def test_student_is_a_new_smaller_net(self, teacher, ctx):
        before = copy.deepcopy(teacher.state_dict())
        s = self._apply(teacher, ctx)
        assert s.spec.net["width"] == 4 and s is not teacher
        for k, v in teacher.state_dict().items():
            torch.testing.assert_close(v, before[k], equal_nan=True)


class TestDistillZeroPadded(MethodContract):
    """A student with zero padding (the batch-1 edge shape): its exported graph has no
    ``Pad`` node, and it matches the torch student."""

    config = DistillConfig(
        arch="resnet", width=4, depth=1, padding="zeros", epochs=2, rollout_epochs=1
    )

    def test_student_pads_with_zeros_inside_its_convs(self, teacher, ctx, probe, tmp_path):
        import onnx

        from wxmodels.export.onnx import export_onnx, onnx_parity

        s = self._apply(teacher, ctx)
        assert s.spec.padding == "zeros" and teacher.spec.padding != "zeros"
        path = export_onnx(s, tmp_path / "s.onnx")
        assert "Pad" not in [n.op_type for n in onnx.load(str(path)).graph.node]
        assert onnx_parity(s, path, *probe) < 1e-4


class TestDistillIntoTransformer(MethodContract):
    """Output distillation into a transformer student, from either family."""

    config = DistillConfig(arch="transformer", width=8, depth=1, heads=2, epochs=2)

    def test_student_is_a_transformer(self, teacher, ctx):
        s = self._apply(teacher, ctx)
        assert s.spec.net["arch"] == "transformer" and len(s.core.blocks) == 1


class TestDepth(MethodContract):
    """Depth distillation: 4 blocks -> 2 (the transformer); a U-Net is not a stack of blocks
    and is refused in one line, a ResNet is (``test_depth_on_a_resnet``)."""

    config = DepthConfig(depth=2, block_epochs=1, epochs=1)

    @pytest.fixture(autouse=True)
    def _stacks_only(self, family, teacher, ctx):
        if family == "unet":
            with pytest.raises(ValueError, match="not a stack of blocks"):
                self._apply(teacher, ctx)
            pytest.skip("depth distillation needs a stack of blocks; the refusal is checked")

    def test_student_has_fewer_blocks_built_from_the_teacher(self, teacher, ctx):
        before = copy.deepcopy(teacher.state_dict())
        s = self._apply(teacher, ctx)
        assert len(s.core.blocks) == 2 and s.spec.net["depth"] == 2
        for k, v in teacher.state_dict().items():  # the teacher is not changed
            torch.testing.assert_close(v, before[k], equal_nan=True)
        # the student's embedding came from the teacher and was fine-tuned, not re-drawn
        delta = (s.core.pos - teacher.core.pos).abs().max()
        assert float(delta) < 0.5 * float(teacher.core.pos.abs().max())


class TestCluster(MethodContract):
    config = ClusterConfig(bits=3, finetune_epochs=1)
    measure = staticmethod(max_distinct_per_layer)

    def test_at_most_2_to_the_b_values_per_layer(self, teacher, ctx):
        m = self._apply(teacher, ctx)
        assert max_distinct_per_layer(m) <= 8


class OnnxMethodContract:
    """What every ONNX-side method (and a chain ending in one) must do: config round trip, a
    smaller file than the fp32 export, the same inputs and outputs, finite values inside the
    domain and NaN outside, an error in std units that stays moderate, and a pack that unpacks
    to exactly the file."""

    config: object
    torch_steps: tuple = ()
    max_error = 0.5  # std units, on an untrained net

    def test_contract(self, teacher, ctx, probe, tmp_path):
        cfg_type = type(self.config)
        assert cfg_type.model_validate_json(self.config.model_dump_json()) == self.config
        model = copy.deepcopy(teacher)
        for step in self.torch_steps:
            model = get_method(step).apply(model, step, ctx=ctx)
        fp32 = export_onnx(model.eval(), tmp_path / "fp32.onnx")
        method = get_method(self.config)
        assert method.stage == "onnx" and self.config.stage == "onnx"
        q = method.apply(fp32, tmp_path / "q.onnx", self.config, ctx=ctx, history=model.history)
        assert q.stat().st_size < fp32.stat().st_size
        before = [(i.name, i.type.tensor_type.elem_type) for i in onnx.load(str(fp32)).graph.input]
        after = [(i.name, i.type.tensor_type.elem_type) for i in onnx.load(str(q)).graph.input]
        assert after == before  # a deployer feeds the same tensors
        state, tm = probe
        out = OrtForecaster(q)(state, tm)
        ref = OrtForecaster(fp32)(state, tm)
        valid = ctx.fields.valid
        assert out.shape == ref.shape and np.isfinite(out[:, :, valid]).all()
        assert np.isnan(out[:, :, ~valid]).all()
        assert np.abs(out - ref)[:, :, valid].max() / 3.0 < self.max_error
        pack_onnx(q, tmp_path / "q.wxpack")
        assert unpack_onnx(tmp_path / "q.wxpack") == q.read_bytes()


class TestInt8(OnnxMethodContract):
    config = Int8Config(calibration_samples=8)

    def test_static_qdq(self, teacher, ctx, tmp_path, family):
        fp32 = export_onnx(teacher, tmp_path / "fp32.onnx")
        q = get_method(self.config).apply(
            fp32, tmp_path / "q.onnx", self.config, ctx=ctx, history=2
        )
        graph = onnx.load(str(q)).graph
        ops = {n.op_type for n in graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops
        if family == "transformer":  # the linear layers' MatMuls take dequantized int8 inputs
            made_by = {o: n.op_type for n in graph.node for o in n.output}
            quantized = [
                n
                for n in graph.node
                if n.op_type == "MatMul"
                and all(made_by.get(i) == "DequantizeLinear" for i in n.input)
            ]
            assert len(quantized) >= 4 * 2  # qkv and proj, fc1 and fc2 of each block at least


class TestDynamic(OnnxMethodContract):
    config = DynamicConfig()

    def test_quantizes_the_weight_ops(self, teacher, ctx, tmp_path, family):
        fp32 = export_onnx(teacher, tmp_path / "fp32.onnx")
        q = get_method(self.config).apply(
            fp32, tmp_path / "q.onnx", self.config, ctx=ctx, history=2
        )
        ops = {n.op_type for n in onnx.load(str(q)).graph.node}
        want = "ConvInteger" if family == "unet" else "MatMulInteger"
        assert want in ops, ops


class TestQatThenInt8(OnnxMethodContract):
    """``qat`` is a torch step that only makes sense before ``int8``: the contract runs the
    chain."""

    torch_steps = (QatConfig(finetune_epochs=1),)
    config = Int8Config(calibration_samples=8)


def test_methods_refuse_what_they_cannot_do(teacher, ctx):
    with pytest.raises(ValueError, match="no layer would shrink"):
        get_method("lowrank").apply(
            copy.deepcopy(teacher), LowRankConfig(ratio=1.0, finetune_epochs=0), ctx=ctx
        )
    with pytest.raises(ValueError, match="selected no weight layer"):
        get_method("prune").apply(
            copy.deepcopy(teacher),
            PruneConfig(finetune_epochs=0),
            ctx=ctx,
            filter_fn=lambda m, n: False,
        )


def test_sensitivity_ranks_layers_and_protection_leaves_them_alone(teacher, ctx):
    from wxmodels.compress.sensitivity import layer_sensitivity, protect_filter

    sens = layer_sensitivity(teacher, ctx)
    names = [f for f, _ in weight_layers(teacher)]
    assert list(sens) == names and all(np.isfinite(v) for v in sens.values())
    assert max(sens.values()) > 0  # damaging some layer costs something
    filter_fn, protected = protect_filter(sens, 2)
    assert protected == sorted(sens, key=lambda f: -sens[f])[:2]
    cfg = PruneConfig(amount=0.6, steps=1, finetune_epochs=0)
    pruned = get_method(cfg).apply(copy.deepcopy(teacher), cfg, ctx=ctx, filter_fn=filter_fn)
    units = dict(weight_layers(pruned))
    for fqn in protected:
        w = leaf_layers(units[fqn])[0].weight
        assert int((w == 0).sum()) == 0, fqn
    others = [f for f in names if f not in protected]
    assert any(int((leaf_layers(units[f])[0].weight == 0).sum()) > 0 for f in others)


def test_depth_on_a_resnet(fields, ctx):
    """Depth distillation on the conv family's stack of residual blocks: 4 -> 2."""
    from wxmodels.data.fields import compute_stats
    from wxmodels.nets import Forecaster, ForecasterSpec

    torch.manual_seed(0)
    spec = ForecasterSpec(
        net={"arch": "resnet", "width": 8, "depth": 4, "history": 2},
        variables=fields.variables,
        lat=fields.lat.tolist(),
        lon=fields.lon.tolist(),
        step_hours=1.0,
        **compute_stats(fields, (0, 100)),
    )
    teacher = Forecaster(spec, valid=fields.valid).eval()
    cfg = DepthConfig(depth=2, block_epochs=1, epochs=1)
    s = get_method(cfg).apply(copy.deepcopy(teacher), cfg, ctx=ctx)
    assert len(s.core.blocks) == 2 and s.n_params() < teacher.n_params()
