"""The exact engine is trustworthy because these tests pin it to Qiskit's own results."""

import numpy as np
import pytest
import torch
from qiskit import transpile
from qiskit.quantum_info import Operator, Statevector
from qiskit_aer import AerSimulator

from qmae_qiskit import QAE, QMAE
from qmae_qiskit.angles import embedding_angles
from qmae_qiskit.circuits import (
    CIRCUIT_VARIANTS,
    fidelity_circuit,
    fidelity_from_counts,
    keep_fraction_from_counts,
    reconstruction_circuit,
)
from qmae_qiskit.engines.ancilla_decoder import IDENTITY_BLOCK
from qmae_qiskit.engines.exact import block_matrices
from qmae_qiskit.model_circuits import bound_circuit, template
from qmae_qiskit.runtime.transpile import mid_circuit_measurements


def _model(image_size, patch, ratio, seed=0, cls=QMAE, **kw):
    model = cls(image_size=image_size, patch_size=patch, mask_ratio=ratio, seed=seed, **kw)
    if model.token is not None:
        with torch.no_grad():
            model.token.copy_(torch.rand(model.token.shape, generator=torch.Generator().manual_seed(seed)))
    return model


@pytest.mark.parametrize("size,count,qubits", [pytest.param(16, 8, 18, marks=pytest.mark.slow), (8, 8, 14)])
def test_exact_matches_statevector_on_paper_circuit(mnist16, mnist8, size, count, qubits):
    """8 real images, black borders included, at 16x16 (18 qubits) and 8x8 (14 qubits)."""
    images = (mnist16 if size == 16 else mnist8)[:count]
    model = _model(size, size // 2, 0.25)
    mask = model.random_mask(count, generator=torch.Generator().manual_seed(1))
    model.set_engine("exact", dtype=torch.complex128)
    exact = model.fidelity(images, mask).detach().numpy()
    spec = template(model, "paper")
    assert spec.circuit.num_qubits == qubits
    for b in range(count):
        state = Statevector(bound_circuit(model, images[b], mask[b], variant="paper"))
        p0 = state.probabilities([spec.readout_qubit])[0]
        assert exact[b] == pytest.approx(2 * p0 - 1, abs=1e-5)


@pytest.mark.slow
def test_estimator_matches_exact_fidelity_at_16x16(mnist16):
    images = mnist16[:8]
    model = _model(16, "8x8", 0.25, seed=3)
    mask = model.random_mask(8, generator=torch.Generator().manual_seed(2))
    exact = model.fidelity(images, mask).detach()
    model.set_engine("estimator")
    with torch.no_grad():
        est = model.fidelity(images, mask)
    torch.testing.assert_close(est, exact, atol=1e-5, rtol=0)
    qae = _model(16, "8x8", 0.25, seed=3, cls=QAE)
    exact_qae = qae.fidelity(images, mask).detach()
    with torch.no_grad():
        torch.testing.assert_close(qae.set_engine("estimator").fidelity(images, mask), exact_qae, atol=1e-5, rtol=0)


def _gradients(model, images, mask, engine, **options):
    model.set_engine(engine, **options)
    model.zero_grad()
    loss = model.loss(images, mask)
    loss.backward()
    return [loss.detach().clone(), model.theta.grad.clone(), model.token.grad.clone()]


def _assert_same_gradients(est, exact):
    torch.testing.assert_close(est[0].double(), exact[0].double(), atol=1e-5, rtol=0)
    for e, x in zip(est[1:], exact[1:]):
        assert torch.linalg.norm(e.double() - x.double()) <= 1e-4 * torch.linalg.norm(x.double()) + 1e-6


@pytest.mark.slow
def test_engines_agree_on_gradients_param_shift(mnist4):
    """Weight and token gradients through EstimatorQNN + TorchConnector (qiskit-machine-learning's
    parameter shift) equal autograd's. At 4x4 (n = 4): ~5 s per image here."""
    images = mnist4[:8]
    model = _model(4, "2x2", 0.25, seed=5)
    mask = model.random_mask(8, generator=torch.Generator().manual_seed(4))
    _assert_same_gradients(
        _gradients(model, images, mask, "estimator", gradient="param_shift"), _gradients(model, images, mask, "exact")
    )


def test_engines_agree_on_gradients_aer_adjoint_at_16x16(mnist16):
    """The estimator engine's default backward (the adjoint method: two Aer runs per step) equals
    autograd through the exact engine in double precision, at the paper's size, on 8 real images:
    the loss, the weights' and the mask token's gradients to 1e-6."""
    images = mnist16[:8]
    model = _model(16, "8x8", 0.25, seed=6)
    mask = model.random_mask(8, generator=torch.Generator().manual_seed(5))
    exact = _gradients(model, images, mask, "exact", dtype=torch.complex128)
    est = _gradients(model, images, mask, "estimator")
    for e, x in zip(est, exact):
        torch.testing.assert_close(e.double(), x.double(), atol=1e-6, rtol=0)


def _probability(bits, spec, *, zero=None, fresh0=False):
    """P(the zero flag reads ``zero`` (any if None) and, with ``fresh0``, every fresh qubit reads 0)."""
    total = 0.0
    for key, v in bits.items():
        q = key[::-1]
        if zero is not None and int(q[spec.readout_qubit]) != zero:
            continue
        if fresh0 and any(q[f] == "1" for f in spec.fresh):
            continue
        total += v
    return total


def test_estimator_circuit_gives_every_branch_as_a_few_pauli_terms(mnist4):
    """``estimator_circuit``: P(zero = 1) = F, P(zero = 1, fresh = 0) = joint, P(fresh = 0) = kept,
    read off Qiskit's ``Statevector`` of the bound circuit, for a tied and an untied decoder and two
    trash qubits; the engine's observables have at most 2**(t + 1) terms."""
    from qmae_qiskit.circuits import ESTIMATOR_VARIANT, estimator_circuit
    from qmae_qiskit.engines.estimator import EstimatorEngine

    for knobs in ({}, {"decoder": "untied", "latent_qubits": 2}):
        model = _randomized(_model(4, "2x2", 0.25, seed=21, **knobs), 21)
        mask = model.random_mask(3, generator=torch.Generator().manual_seed(21))
        model.set_engine("exact", dtype=torch.complex128)
        b = model.branches(mnist4[:3], mask)
        spec = estimator_circuit(4, trash_qubits=model.trash_qubits, decoder=model.decoder)
        assert spec.variant == ESTIMATOR_VARIANT and spec.circuit.num_qubits == 4 + len(model.trash_qubits) + 1
        assert not any(i.operation.name in ("reset", "measure") for i in spec.circuit.data)
        with torch.no_grad():
            masked = embedding_angles(model.fill(mnist4[:3], mask).flatten(1).double())
            original = embedding_angles(mnist4[:3].flatten(1).double())
        for i in range(3):
            values = dict(zip(spec.input_parameters, torch.cat([masked[i], original[i]]).tolist()))
            weights = model.theta.detach().reshape(-1).tolist()
            if model.decoder_theta is not None:
                weights += model.decoder_theta.detach().reshape(-1).tolist()
            values.update(zip(spec.weight_parameters, weights))
            bits = Statevector(spec.circuit.assign_parameters(values)).probabilities_dict()  # qubit 0 rightmost

            assert _probability(bits, spec, zero=1) == pytest.approx(b.fidelity[i].item(), abs=1e-9)
            assert _probability(bits, spec, zero=1, fresh0=True) == pytest.approx(b.joint[i].item(), abs=1e-9)
            assert _probability(bits, spec, fresh0=True) == pytest.approx(b.kept[i].item(), abs=1e-9)
        engine = EstimatorEngine(4, model.encoder_pairs, model.trash_qubits, decoder=model.decoder)
        assert max(len(op) for op in engine.qnn.observables) <= 2 ** (len(model.trash_qubits) + 1)


def test_shared_bindings_estimator_simulates_each_binding_once():
    """EstimatorQNN sends one PUB per observable; the wrapper merges those that share the circuit
    and bindings into one, with the same values, and passes the others through."""
    from qiskit.circuit import Parameter, QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_aer.primitives import EstimatorV2

    from qmae_qiskit.engines.estimator import SharedBindingsEstimator

    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.ry(a, 0)
    qc.rx(b, 1)
    qc.cx(0, 1)
    obs = [SparsePauliOp("ZI"), SparsePauliOp("IZ"), SparsePauliOp(["ZZ", "XX"], [0.5, 0.25])]
    values = np.random.default_rng(0).uniform(-3, 3, (5, 2))
    other = QuantumCircuit(2)
    # a batch of bindings (EstimatorQNN's forward), one binding (a parameter-shift gradient's), another circuit
    pubs = [(qc, o, values) for o in obs] + [(qc, o, values[0]) for o in obs[:2]] + [(other, SparsePauliOp("ZZ"))]
    shared = SharedBindingsEstimator(EstimatorV2()).run(pubs, precision=0.0).result()
    alone = EstimatorV2().run(pubs, precision=0.0).result()
    assert shared.metadata["merged_pubs"] == 3
    for s_, a_ in zip(shared, alone):
        np.testing.assert_allclose(s_.data.evs, a_.data.evs, atol=1e-12)
        assert s_.data.evs.shape == a_.data.evs.shape


def test_the_state_vector_gradient_name_says_what_replaced_it():
    from qmae_qiskit.engines.estimator import EstimatorEngine

    with pytest.raises(ValueError, match="now 'aer_adjoint'.*use gradient='aer_adjoint'"):
        EstimatorEngine(4, [(0, 1)], [3], gradient="aer_statevector")


def _exact_probabilities(circuit):
    """Aer density-matrix probabilities of the measured bits, without sampling."""
    qc = circuit.remove_final_measurements(inplace=False)
    measured = [circuit.find_bit(inst.qubits[0]).index for inst in circuit.data if inst.operation.name == "measure"]
    qc.save_probabilities_dict(measured)
    sim = AerSimulator(method="density_matrix")
    result = sim.run(transpile(qc, sim, optimization_level=0)).result()
    probs = result.data()["probabilities"]
    width = len(measured)
    return {format(int(k, 16) if isinstance(k, str) else k, f"0{width}b"): v for k, v in probs.items()}


@pytest.mark.parametrize("variant", ["reset", "destructive", "compute_uncompute"])
def test_hardware_variants_match_exact_on_aer_density_matrix(mnist4, variant):
    model = _model(4, "2x2", 0.25, seed=7)
    mask = model.random_mask(6, generator=torch.Generator().manual_seed(6))
    model.set_engine("exact", dtype=torch.complex128)
    exact = model.fidelity(mnist4[:6], mask).detach().numpy()
    n_qubits = {"reset": 9, "destructive": 8, "compute_uncompute": 4}[variant]
    assert template(model, variant).circuit.num_qubits == n_qubits
    for b in range(6):
        circuit = bound_circuit(model, mnist4[b], mask[b], variant=variant, measure=True)
        fid, _ = fidelity_from_counts(_exact_probabilities(circuit), variant=variant, num_qubits=4)
        assert fid == pytest.approx(exact[b], abs=1e-6)


def test_reset_variant_with_shots_is_within_four_standard_errors(mnist4):
    model = _model(4, "2x2", 0.25, seed=8)
    mask = model.random_mask(1, generator=torch.Generator().manual_seed(9))
    exact = model.fidelity(mnist4[:1], mask).item()
    circuit = bound_circuit(model, mnist4[0], mask[0], variant="reset", measure=True)
    sim = AerSimulator(seed_simulator=11)
    counts = sim.run(transpile(circuit, sim), shots=20000).result().get_counts()
    fid, err = fidelity_from_counts(counts, variant="reset", num_qubits=4)
    assert abs(fid - exact) <= 4 * err


def test_fidelity_from_counts_rules():
    assert fidelity_from_counts({"0": 75, "1": 25}, variant="reset", num_qubits=2)[0] == pytest.approx(0.5)
    # destructive: c = ref bits (high) + data bits (low); parity of AND(data_i, ref_i)
    counts = {"0101": 1, "0011": 1}  # data=01,ref=01 -> AND=01 odd -> -1 ; data=11,ref=00 -> +1
    assert fidelity_from_counts(counts, variant="destructive", num_qubits=2)[0] == pytest.approx(0.0)
    assert fidelity_from_counts({"000": 30, "010": 70}, variant="compute_uncompute", num_qubits=3)[0] == pytest.approx(
        0.3
    )
    with pytest.raises(ValueError, match="4-bit"):
        fidelity_from_counts({"01": 3}, variant="destructive", num_qubits=2)
    with pytest.raises(ValueError, match="variant"):
        fidelity_from_counts({"0": 1}, variant="bogus", num_qubits=2)


# --- the architecture knobs and the post-selected circuits, pinned to Qiskit ---------------------

KNOBS = [
    dict(layers=2),
    dict(decoder="untied"),
    dict(tokens="per-patch"),
    dict(latent_qubits=2, decoder="untied", layers=2, tokens="per-patch"),
]


def _randomized(model, seed):
    """Random token and decoder weights, so that a knob that did nothing would show."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        if model.token is not None:
            model.token.copy_(torch.rand(model.token.shape, generator=g))
        if model.decoder_theta is not None:
            model.decoder_theta.copy_(torch.rand(model.decoder_theta.shape, generator=g) * 6 - 3)
    return model


def _postselect_run(circuit):
    """Evolve a Statevector through ``circuit``, keeping the branch where each *mid-circuit*
    measurement reads 0 (projecting there, unnormalized). Returns the final state, the qubits
    measured at the end, and the kept probability."""
    state = Statevector.from_int(0, 2**circuit.num_qubits)
    final, kept = [], 1.0
    data = circuit.data
    for i, inst in enumerate(data):
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        name = inst.operation.name
        if name == "barrier":
            continue
        if name == "measure":
            later = {
                circuit.find_bit(q).index
                for nxt in data[i + 1 :]
                if nxt.operation.name != "measure"
                for q in nxt.qubits
            }
            if qubits[0] in later:  # mid-circuit: keep the branch where it reads 0
                amps = state.data.copy()
                amps[(np.arange(len(amps)) >> qubits[0]) & 1 == 1] = 0
                state, kept = Statevector(amps), float(np.sum(np.abs(amps) ** 2))
            else:
                final += qubits
            continue
        state = state.evolve(inst.operation, qargs=qubits)
    return state, final, kept


def _postselected_probabilities(circuit):
    """Exact ``(P(every bit 0), P(every mid-circuit bit 0))`` of a post-selected circuit."""
    state, final, kept = _postselect_run(circuit)
    probs = np.abs(state.data) ** 2
    zero = np.ones(len(probs), dtype=bool)
    for q in final:
        zero &= (np.arange(len(probs)) >> q) & 1 == 0
    return float(probs[zero].sum()), kept


@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_knobs_match_statevector_on_the_paper_circuit(mnist4, knobs):
    """Every Branches field, for each knob, from the 18-qubit-style circuit (here n = 4) of Qiskit."""
    model = _randomized(_model(4, "2x2", 0.25, seed=11, **knobs), 11)
    mask = model.random_mask(4, generator=torch.Generator().manual_seed(3))
    model.set_engine("exact", dtype=torch.complex128)
    b = model.branches(mnist4[:4], mask)
    spec = template(model, "paper")
    for i in range(4):
        state = Statevector(bound_circuit(model, mnist4[i], mask[i], variant="paper"))
        probs = state.probabilities_dict([spec.readout_qubit, *spec.fresh])  # key: fresh bits, then the control qubit
        width = len(spec.fresh) + 1
        p = {int(k, 2): v for k, v in probs.items()}
        anc0_fresh0 = p.get(0, 0.0)
        anc1_fresh0 = p.get(1, 0.0)
        kept = anc0_fresh0 + anc1_fresh0
        z = sum(v * (1 if k % 2 == 0 else -1) for k, v in p.items())
        assert b.fidelity[i].item() == pytest.approx(z, abs=1e-6)
        assert b.kept[i].item() == pytest.approx(kept, abs=1e-6)
        assert b.joint[i].item() == pytest.approx(anc0_fresh0 - anc1_fresh0, abs=1e-6)
        assert width == 1 + len(model.trash_qubits)


@pytest.mark.parametrize("variant", ["postselect", "postselect_flag"])
@pytest.mark.parametrize("knobs", [{}, dict(latent_qubits=2, decoder="untied", layers=2)], ids=["paper", "knobs"])
def test_postselected_circuits_match_the_exact_engine(mnist4, variant, knobs):
    """F of the kept shots and the kept fraction, exactly (1e-6): the flag variant by Statevector,
    the mid-circuit variant by projecting the state at its mid-circuit measurement."""

    model = _randomized(_model(4, "2x2", 0.25, seed=12, objective="postselect", **knobs), 12)
    mask = model.random_mask(5, generator=torch.Generator().manual_seed(8))
    model.set_engine("exact", dtype=torch.complex128)
    exact = model.fidelity(mnist4[:5], mask).detach().numpy()
    kept = model.keep_probability(mnist4[:5], mask).detach().numpy()
    t = len(model.trash_qubits)
    assert template(model, variant).circuit.num_qubits == 4 + (t if variant == "postselect_flag" else 0)
    for b in range(5):
        circuit = bound_circuit(model, mnist4[b], mask[b], variant=variant, measure=True)
        if variant == "postselect_flag":
            probs = _exact_probabilities(circuit)
            f, _ = fidelity_from_counts(probs, variant=variant, num_qubits=4)
            k = keep_fraction_from_counts(probs, num_qubits=4)
        else:
            passed, k = _postselected_probabilities(circuit)
            f = passed / k
        assert f == pytest.approx(exact[b], abs=1e-6)
        assert k == pytest.approx(kept[b], abs=1e-6)


def test_postselected_reconstruction_circuit_matches_the_exact_engine(mnist4):
    model = _randomized(_model(4, "2x2", 0.25, seed=13, decoder="untied"), 13)
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(2))
    model.set_engine("exact", dtype=torch.complex128)
    exact = model.reconstruct(mnist4[:3], mask, postselect=True).detach().square().flatten(1).numpy()
    assert template(model, "reconstruction_postselect").circuit.num_clbits == 4 + 1
    for b in range(3):
        state, final, kept = _postselect_run(
            bound_circuit(model, mnist4[b], mask[b], variant="reconstruction_postselect")
        )
        assert final == [0, 1, 2, 3] and kept > 0
        probs = np.abs(state.data) ** 2  # the data qubits are the circuit's only qubits
        np.testing.assert_allclose(probs / probs.sum(), exact[b], atol=1e-6)


@pytest.mark.parametrize("gradient", ["aer_adjoint", pytest.param("param_shift", marks=pytest.mark.slow)])
def test_estimator_engine_agrees_on_postselection_with_an_untied_decoder(mnist4, gradient):
    """Values and gradients of the post-selected loss (with the acceptance term), an untied decoder
    and per-patch tokens, through EstimatorQNN, equal the exact engine's."""
    model = _randomized(
        _model(4, "2x2", 0.25, seed=14, objective="postselect", decoder="untied", tokens="per-patch"), 14
    )
    images = mnist4[:3]
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(6))

    def grads(engine, **options):
        model.set_engine(engine, **options)
        model.zero_grad()
        loss = model.loss(images, mask, keep_weight=0.7)
        loss.backward()
        return [
            loss.detach().double(),
            model.theta.grad.clone(),
            model.decoder_theta.grad.clone(),
            model.token.grad.clone(),
        ]

    exact = grads("exact", dtype=torch.complex128)
    est = grads("estimator", gradient=gradient)
    torch.testing.assert_close(est[0], exact[0], atol=1e-5, rtol=0)
    for e, x in zip(est[1:], exact[1:]):
        assert torch.linalg.norm(e.double() - x.double()) <= 1e-4 * torch.linalg.norm(x.double()) + 1e-6


# --- issue 20's fill-in architectures: the ancilla-assisted (block-encoded) decoder, mask-position
# conditioning and the composite loss, pinned to Qiskit and to finite differences ------------------


def _fill_model(seed: int, **options) -> QMAE:
    model = _randomized(QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25, seed=seed, **options), seed)
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        if model.ancilla_theta is not None:  # far from the identity, so that the stage matters
            model.ancilla_theta.copy_(torch.rand(model.ancilla_theta.shape, generator=g) * 6 - 3)
        if model.token is not None:
            model.token.copy_(torch.rand(model.token.shape, generator=g))
    model.set_engine("exact", dtype=torch.complex128)
    return model


def test_identity_block_is_the_identity():
    block = block_matrices(torch.tensor([IDENTITY_BLOCK], dtype=torch.float64), torch.complex128)[0]
    phase = block[0, 0]
    assert abs(abs(phase) - 1) < 1e-9
    np.testing.assert_allclose((block / phase).numpy(), np.eye(4), atol=1e-8)


def test_ancilla_stage_at_the_identity_is_the_plain_decoder(mnist4):
    """A fresh ancilla stage set to the identity block leaves every number of the plain model."""
    plain = _fill_model(3, objective="postselect")
    wide = QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25, objective="postselect", ancillas=1)
    wide.load_state_dict({**plain.state_dict(), "ancilla_theta": wide.ancilla_theta.detach()}, strict=True)
    with torch.no_grad():
        wide.ancilla_theta.copy_(torch.tensor(IDENTITY_BLOCK).repeat(len(wide.ancilla_pairs)))
    wide.set_engine("exact", dtype=torch.complex128)
    mask = plain.random_mask(5, generator=torch.Generator().manual_seed(4))
    a, b = plain.branches(mnist4[:5], mask), wide.branches(mnist4[:5], mask)
    for name in ("fidelity", "joint", "kept"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-6, rtol=0)
    torch.testing.assert_close(b.accepted, torch.ones(5, dtype=b.accepted.dtype), atol=1e-6, rtol=0)


@pytest.mark.parametrize("ancillas", [1, 2])
@pytest.mark.parametrize("variant", ["postselect", "postselect_flag"])
def test_ancilla_postselected_circuits_match_the_exact_engine(mnist4, variant, ancillas):
    model = _fill_model(21, objective="postselect", ancillas=ancillas, decoder="untied")
    mask = model.random_mask(4, generator=torch.Generator().manual_seed(8))
    exact = model.fidelity(mnist4[:4], mask).detach().numpy()
    kept = model.keep_probability(mnist4[:4], mask).detach().numpy()
    spec = template(model, variant)
    t = len(model.trash_qubits)
    assert spec.circuit.num_qubits == 4 + ancillas + (t if variant == "postselect_flag" else 0)
    assert spec.circuit.num_clbits == 4 + t + ancillas
    for b in range(4):
        circuit = bound_circuit(model, mnist4[b], mask[b], variant=variant, measure=True)
        if variant == "postselect_flag":
            probs = _exact_probabilities(circuit)
            f, _ = fidelity_from_counts(probs, variant=variant, num_qubits=4)
            k = keep_fraction_from_counts(probs, num_qubits=4)
        else:  # the trash measured mid-circuit, the aux qubits at the end
            state, final, trash_kept = _postselect_run(circuit)
            probs = np.abs(state.data) ** 2
            index = np.arange(len(probs))
            aux = [circuit.find_bit(q).index for q in circuit.qregs[1]]
            aux_zero = np.all([(index >> q) & 1 == 0 for q in aux], axis=0)
            all_zero = np.all([(index >> q) & 1 == 0 for q in final], axis=0)
            k = float(probs[aux_zero].sum())
            f = float(probs[all_zero].sum()) / k
            assert trash_kept > 0
        assert f == pytest.approx(exact[b], abs=1e-6)
        assert k == pytest.approx(kept[b], abs=1e-6)


def test_ancilla_reset_circuit_matches_the_exact_engine(mnist4):
    """Reset objective with ancillas: the compute-uncompute circuit's F of the accepted shots."""
    model = _fill_model(22, ancillas=1)
    mask = model.random_mask(4, generator=torch.Generator().manual_seed(9))
    b = model.branches(mnist4[:4], mask)
    assert (b.accepted < 0.999).all()  # the stage discards shots
    for i in range(4):
        circuit = bound_circuit(model, mnist4[i], mask[i], variant="compute_uncompute", measure=True)
        probs = _exact_probabilities(circuit)
        f, _ = fidelity_from_counts(probs, variant="compute_uncompute", num_qubits=4)
        accepted = keep_fraction_from_counts(probs, num_qubits=4)
        assert f == pytest.approx(b.fidelity[i].item(), abs=1e-6)
        assert accepted == pytest.approx(b.accepted[i].item(), abs=1e-6)


@pytest.mark.parametrize("variant", ["reconstruction", "reconstruction_postselect", "reconstruction_postselect_flag"])
def test_ancilla_reconstruction_circuits_match_the_exact_engine(mnist4, variant):
    postselect = variant != "reconstruction"
    model = _fill_model(23, ancillas=1, objective="postselect" if postselect else "reset")
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(2))
    exact = model.reconstruct(mnist4[:3], mask).detach().square().flatten(1).numpy()
    kept_exact = model.acceptance(model.branches(mnist4[:3], mask)).detach().numpy() if postselect else None
    for b in range(3):
        circuit = bound_circuit(model, mnist4[b], mask[b], variant=variant)
        if variant == "reconstruction_postselect":  # the trash measured mid-circuit: project there; 0..3 data, 4 aux
            state, final, _ = _postselect_run(circuit)
            assert final == [0, 1, 2, 3, 4]
            kept = (np.abs(state.data) ** 2)[:16]  # aux (the high qubit) reads 0
        else:  # c[0..3] data, then the flag (no mid-circuit measurement) and the aux bit
            assert mid_circuit_measurements(circuit) == (not postselect)  # the reset, or nothing
            probs = _exact_probabilities(circuit)
            assert len(next(iter(probs))) == 4 + (2 if postselect else 1)
            kept = np.zeros(16)
            for key, v in probs.items():
                if "1" not in key[:-4]:
                    kept[int(key[-4:], 2)] += v
            if postselect:  # the flag's kept shots are the mid-circuit measurement's, in number too
                assert kept.sum() == pytest.approx(kept_exact[b], abs=1e-6)
        np.testing.assert_allclose(kept / kept.sum(), exact[b], atol=1e-6)


def test_only_the_mid_circuit_variants_measure_mid_circuit():
    model = QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25, objective="postselect")
    found = {v: mid_circuit_measurements(template(model, v, measure=True).circuit) for v in CIRCUIT_VARIANTS}
    # a reset of the used trash, or its mid-circuit measurement; the paper's SWAPs it with a fresh qubit
    mid = {"reset", "destructive", "compute_uncompute", "postselect", "reconstruction", "reconstruction_postselect"}
    assert {v for v, m in found.items() if m} == mid
    with pytest.raises(ValueError, match="flag=True needs postselect=True"):
        reconstruction_circuit(4, flag=True)


def test_the_unitary_ceiling_with_ancillas_is_a_contraction_of_its_matrix(mnist4):
    """``--ansatz unitary --ancillas 1``: the engine's output is <0|W|0> of the dense W, applied."""
    model = _fill_model(24, ansatz="unitary", objective="postselect", ancillas=1)
    with torch.no_grad():
        model.ancilla_theta.normal_(0, 0.3, generator=torch.Generator().manual_seed(1))
    mask = model.random_mask(3, generator=torch.Generator().manual_seed(3))
    engine = model._engine
    w = engine.ancilla_stage.unitary(model.ancilla_theta.detach())
    np.testing.assert_allclose((w @ w.mH).numpy(), np.eye(32), atol=1e-9)
    u = engine.unitary(model.theta.detach())
    psi = model.fill(mnist4[:3], mask).flatten(1).double()
    psi = (psi / psi.norm(dim=1, keepdim=True)).to(torch.complex128)
    chi = mnist4[:3].flatten(1).double()
    chi = chi / chi.norm(dim=1, keepdim=True)
    projector = torch.zeros(16, 16, dtype=torch.complex128)
    projector[:8, :8] = torch.eye(8)  # trash = qubit 3 reads 0
    out = psi @ (w[:16, :16] @ u.mH @ projector @ u).T
    kept = out.abs().square().sum(1)
    fid = (out * chi.to(torch.complex128)).sum(1).abs().square() / kept
    b = model.branches(mnist4[:3], mask)
    torch.testing.assert_close(b.kept, kept.to(b.kept.dtype), atol=1e-8, rtol=0)
    torch.testing.assert_close(b.postselected, fid.to(b.kept.dtype), atol=1e-8, rtol=0)


def test_position_conditioning_binds_each_images_own_weights(mnist4):
    """Each image's circuit carries its position's weights and token: Statevector of the paper
    circuit, per image, equals the exact engine's batched value."""
    model = _fill_model(25, condition="position", decoder="untied")
    assert model.theta.shape[0] == model.num_positions == 4 and model.token.shape == (4, 2, 2)
    mask = model.random_mask(8, generator=torch.Generator().manual_seed(5))
    positions = model.positions(mask)
    assert len(set(positions.tolist())) > 1
    exact = model.fidelity(mnist4[:8], mask).detach()
    spec = template(model, "paper")
    for i in range(8):
        state = Statevector(bound_circuit(model, mnist4[i], mask[i], variant="paper"))
        z = state.expectation_value(Operator.from_label("Z" + "I" * (spec.circuit.num_qubits - 1)))
        assert float(np.real(z)) == pytest.approx(exact[i].item(), abs=1e-6)
    # and another position's weights would give another number: the binding is not a no-op
    other = model.theta.detach().clone()
    with torch.no_grad():
        model.theta[positions[0]] = other[(positions[0] + 1) % 4]
    assert model.fidelity(mnist4[:1], mask[:1]).item() != pytest.approx(exact[0].item(), abs=1e-4)


def test_position_conditioning_refuses_masks_of_several_patches():
    with pytest.raises(ValueError, match="one masked patch per image"):
        QMAE(image_size=4, patch_size="2x2", mask_ratio=0.5, condition="position")
    model = QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25, condition="position")
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[0, 0, 0] = True  # one pixel, not a whole patch
    with pytest.raises(ValueError, match="not exactly one whole 2x2 patch"):
        model.fidelity(torch.rand(1, 4, 4), mask)


def test_ancillas_are_refused_by_the_swap_test_variants_and_the_estimator():
    with pytest.raises(ValueError, match="compute_uncompute"):
        fidelity_circuit(4, variant="reset", ancillas=1)
    model = QMAE(image_size=4, patch_size="2x2", mask_ratio=0.25, ancillas=1)
    with pytest.raises(ValueError, match="exact"):
        model.set_engine("estimator")


@pytest.mark.parametrize(
    "knobs", [dict(ancillas=1), dict(condition="position"), dict(ancillas=1, condition="position")]
)
def test_composite_loss_gradients_match_finite_differences(mnist4, knobs):
    model = _fill_model(26, objective="postselect", **knobs)
    mask = model.random_mask(6, generator=torch.Generator().manual_seed(6))
    params = [p for p in (model.theta, model.ancilla_theta, model.token) if p is not None]
    with torch.no_grad():
        for p in params:
            p.data = p.data.double()

    def loss() -> torch.Tensor:
        return model.loss(mnist4[:6].double(), mask, keep_weight=0.1, loss="composite")

    value = loss()
    value.backward()
    g = torch.Generator().manual_seed(0)
    for p in params:
        direction = torch.randn(p.shape, generator=g, dtype=torch.float64)
        analytic = (p.grad * direction).sum().item()
        eps = 1e-6
        with torch.no_grad():
            p += eps * direction
            up = loss().item()
            p -= 2 * eps * direction
            down = loss().item()
            p += eps * direction
        assert analytic == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-7)
