"""Backends by the names users know: ``aer``, the fake devices (``fake_fez``), real ones (``ibm_fez``).

A real backend comes from ``QiskitRuntimeService()``, which finds a saved account
(``QiskitRuntimeService.save_account``) or the ``QISKIT_IBM_TOKEN`` / ``QISKIT_IBM_CHANNEL`` /
``QISKIT_IBM_INSTANCE`` environment variables: the library's own conventions. The token is never
read, printed or stored here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

__all__ = ["BackendError", "get_backend", "is_local", "fake_backend_names", "runtime_service"]


class BackendError(ValueError):
    """A backend that cannot be had: unknown name, no account, no network."""


@lru_cache(maxsize=1)
def fake_backend_names() -> tuple[str, ...]:
    """Names of the fake devices in ``qiskit_ibm_runtime.fake_provider`` (``fake_fez``, ...)."""
    import warnings

    from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

    with warnings.catch_warnings():  # some fake devices warn that their properties are not typical
        warnings.simplefilter("ignore", UserWarning)
        return tuple(sorted(b.name for b in FakeProviderForBackendV2().backends()))


def _causes(exc: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def runtime_service() -> Any:
    """``QiskitRuntimeService()`` with a one-line error that names the real cause: no account, an
    unreachable service (no network), or a token or instance the service refused.

    Raises:
        BackendError: the service cannot be had (the token is never part of the message).
    """
    from qiskit_ibm_runtime import QiskitRuntimeService

    local = "; or use a local backend (aer, fake_fez, ...)"
    try:
        return QiskitRuntimeService()
    except (
        Exception
    ) as exc:  # the client raises several types (AccountNotFoundError, InvalidAccountError, requests errors)
        chain = _causes(exc)
        names = " ".join(type(c).__name__ for c in chain)
        if "AccountNotFound" in names or ("Account" in names and "no account" in str(exc).lower()):
            raise BackendError(
                "no IBM Quantum account: save one with QiskitRuntimeService.save_account(token=..., instance=...) "
                "or set QISKIT_IBM_TOKEN and QISKIT_IBM_INSTANCE" + local
            ) from None
        unreachable = next(
            (c for c in chain if "Connection" in type(c).__name__ or "NameResolution" in type(c).__name__), None
        )
        if unreachable is not None:
            host = getattr(getattr(unreachable, "request", None), "url", None) or ""
            raise BackendError(
                f"cannot reach IBM Quantum{' (' + host.split('/')[2] + ')' if '//' in host else ''}: the network or "
                "a proxy refused the connection, so the account could not be checked; check the connection" + local
            ) from None
        if "instances" in str(exc).lower() or "token" in str(exc).lower():
            raise BackendError(
                "IBM Quantum did not accept the account: its instances could not be retrieved (an expired or mistyped "
                "token, or an instance the token has no access to); check QISKIT_IBM_TOKEN / QISKIT_IBM_INSTANCE or "
                "the saved account" + local
            ) from None
        raise BackendError(
            f"cannot use IBM Quantum ({type(exc).__name__}); check the network and your account{local}"
        ) from None


def get_backend(name: str) -> Any:
    """The backend called ``name``.

    Args:
        name: ``"aer"`` (noiseless ``AerSimulator``), a fake device name from
            :func:`fake_backend_names` (local testing mode with that device's noise), or a real
            device name (needs an IBM Quantum account).

    Raises:
        BackendError: unknown name (the message lists the local ones), no account, no network.
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise BackendError(f"backend {name!r} is not a name; give aer, a fake device (fake_fez, ...) or an IBM device")
    local = name.lower()
    if local != name and (local == "aer" or local.startswith("fake_")):  # FAKE_FEZ, Aer: a spelling, not a device
        raise BackendError(f"unknown backend {name!r}; local backend names are lower case: did you mean {local}?")
    if name == "aer":
        from qiskit_aer import AerSimulator

        return AerSimulator()
    if name.startswith("fake_"):
        if name not in fake_backend_names():
            close = [n for n in fake_backend_names() if name[5:8] in n][:5]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise BackendError(
                f"unknown fake backend {name!r}{hint}; the fake backends are: {', '.join(fake_backend_names())}"
            )
        from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2

        return FakeProviderForBackendV2().backend(name)
    service = runtime_service()
    try:
        return service.backend(name)
    except Exception:
        try:
            names = sorted(b.name for b in service.backends())
        except Exception:
            names = []
        listed = f"; your account has: {', '.join(names)}" if names else ""
        raise BackendError(f"unknown backend {name!r}{listed}; local ones: aer, fake_fez, fake_torino, ...") from None


def is_local(backend: Any) -> bool:
    """True for Aer and fake backends (local testing mode), False for IBM Quantum devices."""
    from qiskit_aer import AerSimulator

    return (
        isinstance(backend, AerSimulator)
        or backend.name.startswith("fake_")
        or type(backend).__module__.startswith("qiskit_ibm_runtime.fake_provider")
    )
