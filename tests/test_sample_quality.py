"""FID / KID / IS on a feature network, the digit classifier, the classifier objective and
the cached mnist-features network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nrf.data.batch import Batch
from nrf.data.mnist import ImageSet
from nrf.energies.classifier import DigitClassifier
from nrf.metrics import mnist_features
from nrf.metrics.sample_quality import FeatureNetwork, SampleQualityMeter, reference_quality, sample_quality
from nrf.objectives import OBJECTIVES
from nrf.objectives.classifier import Classifier
from nrf.training.loop import Loop, Streams
from samplers_helpers import one_thread  # noqa: F401 (autouse fixture)


class Identity(nn.Module):
    """Features = the flattened input; logits = the input's first ``k`` values."""

    def __init__(self, k: int = 3) -> None:
        super().__init__()
        self.k = k

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, : self.k]


def _network(k: int = 3) -> FeatureNetwork:
    return FeatureNetwork(Identity(k), name="TEST")


def _gaussian(n: int, mean: torch.Tensor, sd: torch.Tensor, seed: int) -> torch.Tensor:
    return mean + sd * torch.randn(
        n, mean.numel(), generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def test_fid_of_one_set_against_itself_is_zero() -> None:
    x = torch.rand(500, 4, generator=torch.Generator().manual_seed(0))
    q = sample_quality(x, x, _network(), kid_subset_size=200, kid_subsets=10, is_splits=2)
    assert abs(q.fid) < 1e-4
    assert abs(q.kid) < 3 * q.kid_std + 1e-6
    assert set(q.named()) == {"FID-TEST", "KID-TEST", "KID-TEST sd", "IS-TEST", "IS-TEST sd"}


def test_fid_matches_the_closed_form_of_two_gaussians() -> None:
    # diagonal covariances: FID = |m1 - m2|^2 + sum (s1 - s2)^2
    m1, s1 = torch.tensor([0.0, 0.1, -0.1]), torch.tensor([0.10, 0.20, 0.05])
    m2, s2 = torch.tensor([0.2, 0.0, 0.1]), torch.tensor([0.05, 0.20, 0.15])
    a = _gaussian(40_000, m1.double(), s1.double(), 1).float()
    b = _gaussian(40_000, m2.double(), s2.double(), 2).float()
    expected = float((m1 - m2).pow(2).sum() + (s1 - s2).pow(2).sum())
    q = sample_quality(a, b, _network(), value_range=(-10.0, 10.0), kid_subset_size=500, kid_subsets=5)
    # features are pixels mapped from [-10, 10] to [0, 1]: distances scale by 1/20
    assert q.fid * 400 == pytest.approx(expected, rel=0.03)


def test_kid_separates_shifted_sets() -> None:
    gen = torch.Generator().manual_seed(3)
    a = 0.4 + 0.05 * torch.randn(1000, 4, generator=gen)
    b = 0.6 + 0.05 * torch.randn(1000, 4, generator=gen)
    q = sample_quality(a, b, _network(), kid_subset_size=500, kid_subsets=20, is_splits=1)
    assert q.kid > 10 * q.kid_std > 0


def test_inception_score_bounds() -> None:
    k = 3
    confident = torch.zeros(300, 4)
    confident[torch.arange(300), torch.arange(300) % k] = 1.0  # logits 0 / 1 ...
    sharp = sample_quality(confident * 1.0, confident, _network(k), value_range=(0.0, 0.01), is_splits=1)
    # ... mapped from [0, 0.01] and clipped to [0, 1]: one logit is 1, the others 0
    p = torch.softmax(torch.tensor([1.0, 0.0, 0.0]), 0)
    expected = float(torch.exp((p * (p / (1 / k)).log()).sum()))  # KL(p(y|x) || uniform)
    assert sharp.inception_score == pytest.approx(expected, rel=1e-4)
    assert 1.0 < sharp.inception_score <= k
    constant = torch.full((300, 4), 0.5)
    flat = sample_quality(constant, confident, _network(k), is_splits=3)
    assert flat.inception_score == pytest.approx(1.0, abs=1e-5)


def test_meter_reuses_its_reference_and_is_deterministic() -> None:
    gen = torch.Generator().manual_seed(4)
    ref, x = torch.rand(400, 4, generator=gen), torch.rand(300, 4, generator=gen)
    meter = SampleQualityMeter(_network(), ref, kid_subset_size=100, kid_subsets=10, seed=5)
    first, second = meter(x), meter(x)
    assert first == second
    assert (first.kid_subset_size, first.n_reference, first.n_samples) == (100, 400, 300)
    state = torch.get_rng_state()
    meter(x)
    assert torch.equal(state, torch.get_rng_state())  # the caller's stream untouched


def test_bad_samples_are_refused_by_name() -> None:
    ref = torch.rand(50, 4)
    meter = SampleQualityMeter(_network(), ref, kid_subset_size=10)
    bad = torch.rand(50, 4)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="samples holds 1 non-finite"):
        meter(bad)
    with pytest.raises(ValueError, match="reference must hold at least 2"):
        SampleQualityMeter(_network(), torch.rand(1, 4))
    with pytest.raises(TypeError, match="samples must be a float tensor"):
        meter(torch.zeros(50, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="value_range"):
        SampleQualityMeter(_network(), ref, value_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="is_splits"):
        meter(torch.rand(5, 4))


def test_reference_quality_rows() -> None:
    gen = torch.Generator().manual_seed(6)
    train, test = 0.3 + 0.1 * torch.rand(600, 4, generator=gen), 0.3 + 0.1 * torch.rand(200, 4, generator=gen)
    rows = reference_quality(_network(), train, test, generator=gen, kid_subset_size=100, is_splits=2)
    assert list(rows) == ["test", "train", "uniform noise"]
    assert rows["test"].fid == pytest.approx(0.0, abs=1e-5)
    assert rows["train"].fid < rows["uniform noise"].fid


# --- the digit classifier and the classifier objective ---------------------------------


def _patterns(n: int, seed: int, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of ``classes`` easy patterns (a bright 6 x 6 block at a class's place), noisy."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = 0.1 * torch.rand(n, 1, 28, 28, generator=gen)
    for c in range(classes):
        r, col = 2 + 12 * (c // 5), 1 + 5 * (c % 5)
        x[y == c, :, r : r + 6, col : col + 6] += 0.8
    return x.clamp(0, 1), y


def test_digit_classifier_energies() -> None:
    net = DigitClassifier().eval()  # no dropout: logits are a function of x
    x = torch.rand(5, 1, 28, 28)
    logits = net.logits(x)
    assert torch.allclose(net(x), -torch.logsumexp(logits, 1))
    y = torch.tensor([0, 3, 9, 1, 1])
    assert torch.allclose(net.class_energy(x, y), -logits[torch.arange(5), y])
    with pytest.raises(ValueError, match=r"y must lie in \[0, 9\]"):
        net.class_energy(x, torch.tensor([0, 3, 10, 1, 1]))
    with pytest.raises(ValueError, match="one label per row"):
        net.class_energy(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="1 x 28 x 28"):
        DigitClassifier(event_shape=(3, 32, 32))
    with pytest.raises(ValueError, match="expects input of shape"):
        net.logits(torch.rand(2, 3, 28, 28))


def test_classifier_objective_learns_and_refuses_unlabelled_data() -> None:
    torch.manual_seed(0)
    x, y = _patterns(640, 0)
    net = DigitClassifier()
    objective = OBJECTIVES.build({"name": "classifier"}, energy=net)
    assert isinstance(objective, Classifier)
    streams = Streams.from_user_seed(0)
    loop = Loop(objective, Batch(x, y), {"energy": {"name": "adam", "lr": 2e-3}}, batch_size=64, steps=40,
                generator=streams.sampler(torch.device("cpu")), data_generator=streams.data())  # fmt: skip
    loop.run()
    xt, yt = _patterns(200, 1)
    assert float((net.predict(xt) == yt).float().mean()) >= 0.95
    with pytest.raises(ValueError, match="needs labelled data"):
        objective.training_step(Batch(x[:4]), None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        objective.training_step(Batch(x[:4], torch.tensor([0, 1, 2, 12])), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="has no sampler"):
        objective.sample(4)
    with pytest.raises(TypeError, match="needs a class energy"):
        Classifier(nn.Linear(2, 1))


# --- the cached mnist-features network ---------------------------------------------------


def _fake_mnist(split: str = "train", root: object = None) -> ImageSet:
    x, y = _patterns(1280 if split == "train" else 300, 0 if split == "train" else 1)
    return ImageSet(images=(x[:, 0] * 255).round().to(torch.uint8).numpy(), labels=y.numpy().astype(np.uint8))


def test_prepare_and_load_the_feature_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_features, "load_mnist", _fake_mnist)
    monkeypatch.setenv("NRF_DATA_DIR", str(tmp_path))
    with pytest.raises(mnist_features.FeatureNetworkError, match="nrf data prepare mnist-features"):
        mnist_features.load_feature_network()
    folder = mnist_features.prepare_feature_network(progress=False, log=lambda _: None)
    assert folder == tmp_path / "mnist-features"
    state = json.loads((folder / "state.json").read_text())
    assert state["test_accuracy"] >= mnist_features.MIN_ACCURACY
    assert state["recipe"] == mnist_features.RECIPE
    network = mnist_features.load_feature_network()
    assert (network.name, network.digest) == ("MNIST", state["sha256"])
    assert not network.training
    x, _ = _patterns(8, 2)
    assert network.features(x).shape == (8, 128)
    # a second prepare keeps the verified copy
    stamp = (folder / "tensors.safetensors").stat().st_mtime_ns
    mnist_features.prepare_feature_network(progress=False, log=lambda _: None)
    assert (folder / "tensors.safetensors").stat().st_mtime_ns == stamp
    # an altered file is refused, with the command that rebuilds it
    data = bytearray((folder / "tensors.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "tensors.safetensors").write_bytes(bytes(data))
    with pytest.raises(mnist_features.FeatureNetworkError, match="--force"):
        mnist_features.load_feature_network()


def test_prepare_refuses_a_network_below_the_accuracy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def noise(split: str = "train", root: object = None) -> ImageSet:
        rng = np.random.RandomState(0)
        n = 256
        return ImageSet(images=rng.randint(0, 255, (n, 28, 28)).astype(np.uint8),
                        labels=(np.arange(n) % 10).astype(np.uint8))  # fmt: skip

    monkeypatch.setattr(mnist_features, "load_mnist", noise)
    with pytest.raises(mnist_features.FeatureNetworkError, match=r"below 0\.99"):
        mnist_features.prepare_feature_network(tmp_path, progress=False, log=lambda _: None)
    assert not (tmp_path / "mnist-features").exists()


class Pooled(nn.Module):
    """Features = the image average-pooled to 4 x 4; logits = the first 3 of them."""

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[:, :3]


class _Buffer:
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def contents(self, n: int) -> torch.Tensor:
        return self.x[-n:].clone()


class _Stub:
    """An objective with a replay buffer and a sampler of uniform noise."""

    def __init__(self, buffer: torch.Tensor) -> None:
        self.buffer = _Buffer(buffer)

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.rand(n, 1, 28, 28, generator=gen) * 2 - 1


def test_sample_quality_evaluator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nrf.training.data import TrainingData
    from nrf.training.evaluation import EVALUATORS

    pooled = FeatureNetwork(Pooled(), name="TEST")
    monkeypatch.setattr(mnist_features, "load_feature_network", lambda build=False: pooled)
    x, _ = _patterns(400, 3)
    data = TrainingData(train=x * 2 - 1, validation=None, kind="images")
    evaluate = EVALUATORS.build({"name": "sample-quality", "n_samples": 200}, key="e", data=data)
    gen = torch.Generator().manual_seed(0)
    # the buffer holds the reference images themselves: FID ~ 0; uniform noise is far
    same = evaluate(_Stub(data.train[:200]), 1, tmp_path, gen)
    assert set(same) == {"fid_mnist", "kid_mnist", "is_mnist"}
    assert abs(same["fid_mnist"]) < 1e-3
    spec = {"name": "sample-quality", "n_samples": 200, "source": "sample"}
    noise = EVALUATORS.build(spec, key="e", data=data)
    far = noise(_Stub(data.train[:200]), 1, tmp_path, gen)
    assert far["fid_mnist"] > 100 * max(same["fid_mnist"], 1e-3)
    with pytest.raises(ValueError, match=r"\(n, 1, 28, 28\)"):
        EVALUATORS.build("sample-quality", key="e", data=TrainingData(torch.zeros(10, 2), None, "points"))
    with pytest.raises(ValueError, match="n_samples = 1000 is more than the 400"):
        EVALUATORS.build("sample-quality", key="e", data=data)
    with pytest.raises(TypeError, match="source = 'sample'"):
        evaluate(object(), 1, tmp_path, gen)  # type: ignore[arg-type]


def test_fid_inception_network_layout() -> None:
    from nrf.metrics.inception import FIDInceptionV3

    net = FIDInceptionV3().eval()
    # torchvision's Inception v3 (27,161,264 parameters) less its auxiliary head
    # (3,326,696), with 1,008 classes instead of 1,000 (+16,392)
    assert sum(p.numel() for p in net.parameters()) == 23_850_960
    with torch.no_grad():
        grey, logits = net.features_and_logits(torch.rand(2, 1, 28, 28))
        colour = net.features(torch.rand(2, 3, 32, 32))
    assert grey.shape == colour.shape == (2, 2048)
    assert logits.shape == (2, 1008)
    assert bool((grey >= 0).all())  # pooled ReLU activations
    with pytest.raises(ValueError, match=r"\(n, 1 or 3, height, width\)"):
        net.features(torch.rand(2, 2, 28, 28))


def test_inception_weights_convert_verify_and_load(tmp_path: Path) -> None:
    import hashlib

    from nrf.metrics import inception

    torch.manual_seed(0)
    source_net = inception.FIDInceptionV3().eval()
    source = tmp_path / "weights.pth"
    torch.save(source_net.state_dict(), source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    root = tmp_path / "data"
    with pytest.raises(inception.InceptionWeightsError, match="nrf data prepare inception --from"):
        inception.load_inception_network(root)
    with pytest.raises(inception.InceptionWeightsError, match="--sha256"):  # not the published file
        inception.convert_inception_weights(source, root, log=lambda _: None)
    with pytest.raises(inception.InceptionWeightsError, match="expected"):
        inception.convert_inception_weights(source, root, sha256="0" * 64, log=lambda _: None)
    folder = inception.convert_inception_weights(source, root, sha256=digest, log=lambda _: None)
    network = inception.load_inception_network(root)
    assert (network.name, network.digest) == ("Inception", digest)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(network.features(x), source_net.features(x))
    quality = SampleQualityMeter(network, torch.rand(6, 1, 28, 28), kid_subset_size=3, is_splits=2)(x)
    assert {"FID", "KID", "IS"} <= set(quality.named())
    # a file with another network's tensors is refused, naming what differs
    state = source_net.state_dict()
    state.pop("fc.bias")
    other = tmp_path / "other.pth"
    torch.save(state, other)
    other_digest = hashlib.sha256(other.read_bytes()).hexdigest()
    with pytest.raises(inception.InceptionWeightsError, match=r"missing \['fc.bias'\]"):
        inception.convert_inception_weights(other, root, sha256=other_digest, force=True, log=lambda _: None)
    # an altered checkpoint is refused
    data = bytearray((folder / "tensors.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "tensors.safetensors").write_bytes(bytes(data))
    with pytest.raises(inception.InceptionWeightsError, match="--force"):
        inception.load_inception_network(root)
