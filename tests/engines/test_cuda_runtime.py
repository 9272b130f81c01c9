"""Finding the CUDA runtime that matches the installed TensorRT, in fake site-packages layouts (the file lists
of the nvidia-cuda-runtime 13.x and nvidia-cuda-runtime-cu12 wheels), through Polygraphy's own search and
its real Cuda wrapper; only ctypes.CDLL (the loader, which would need a real libcudart) is replaced."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from vit5_infer.engines import cuda_runtime, tensorrt_support
from vit5_infer.engines.cuda_runtime import cudart_hint, find_cudart, polygraphy_cuda, runtime_package

pytestmark = pytest.mark.skipif(sys.platform.startswith("win"), reason="the wheels' Linux layout")


def _site(tmp_path, *relative):
    site = tmp_path / "site-packages"
    for path in relative:
        target = site / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"")
    return site


@pytest.fixture
def fresh_polygraphy_wrapper(monkeypatch, tmp_path):
    """No Polygraphy CUDA wrapper yet; CDLL records what it is asked to load and loads nothing.  Only files
    under tmp_path load, as on a machine without a CUDA toolkit (this one may have /usr/local/cuda)."""
    from polygraphy.cuda import cuda as polygraphy_cuda_module

    monkeypatch.setattr(polygraphy_cuda_module, "G_CUDA", None)
    loaded = []
    real_cdll = ctypes.CDLL

    class Loaded:
        def __new__(cls, name, *args, **kwargs):
            if "libcudart" not in os.path.basename(str(name)):
                return real_cdll(name, *args, **kwargs)  # torch's own libraries, for one
            if not os.path.isfile(str(name)) or not str(name).startswith(str(tmp_path)):
                raise OSError(f"{name}: cannot open shared object file: No such file or directory")
            loaded.append(str(name))
            return super().__new__(cls)

    monkeypatch.setattr(ctypes, "CDLL", Loaded)
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    return loaded


def test_cuda13_wheel_runtime_is_found(tmp_path):
    site = _site(tmp_path, "nvidia/cu13/lib/libcudart.so.13", "nvidia/cuda_runtime/lib/libcudart.so.12")
    assert find_cudart(13, [str(site)]) == site / "nvidia/cu13/lib/libcudart.so.13"
    assert find_cudart(12, [str(site)]) == site / "nvidia/cuda_runtime/lib/libcudart.so.12"
    assert find_cudart(None, [str(site)]) == site / "nvidia/cu13/lib/libcudart.so.13"  # newest when unknown
    assert find_cudart(11, [str(site)]) is None


def test_polygraphy_loads_the_cuda13_wheel_runtime(tmp_path, monkeypatch, fresh_polygraphy_wrapper):
    """Polygraphy's own search misses nvidia/cu13/lib; pointed at it, its wrapper loads libcudart.so.13, and
    LD_LIBRARY_PATH is as it was afterwards."""
    site = _site(tmp_path, "nvidia/cu13/lib/libcudart.so.13")
    monkeypatch.syspath_prepend(str(site))
    wrapper = polygraphy_cuda(13)
    assert fresh_polygraphy_wrapper == [str(site / "nvidia/cu13/lib/libcudart.so.13")]
    assert "LD_LIBRARY_PATH" not in os.environ
    assert polygraphy_cuda(13) is wrapper  # created once, as Polygraphy keeps it


def test_the_matching_major_wins_over_another_runtime_found_first(tmp_path, monkeypatch, fresh_polygraphy_wrapper):
    site = _site(tmp_path, "nvidia/cu13/lib/libcudart.so.13", "toolkit/lib64/libcudart.so.12")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(site / "toolkit/lib64"))
    monkeypatch.syspath_prepend(str(site))
    polygraphy_cuda(13)
    assert fresh_polygraphy_wrapper == [str(site / "nvidia/cu13/lib/libcudart.so.13")]
    assert os.environ["LD_LIBRARY_PATH"] == str(site / "toolkit/lib64")


def test_an_unknown_major_keeps_polygraphys_own_order(tmp_path, monkeypatch, fresh_polygraphy_wrapper):
    """A TensorRT of unknown CUDA major (NGC image, tarball) on a CUDA 12 system whose LD_LIBRARY_PATH has the
    toolkit's runtime, with an unrelated CUDA 13 runtime wheel installed: Polygraphy's own first choice, the
    LD_LIBRARY_PATH one, is loaded, not the newest wheel."""
    site = _site(tmp_path, "nvidia/cu13/lib/libcudart.so.13", "toolkit/lib64/libcudart.so.12")
    monkeypatch.setenv("LD_LIBRARY_PATH", str(site / "toolkit/lib64"))
    monkeypatch.syspath_prepend(str(site))
    polygraphy_cuda(None)
    assert fresh_polygraphy_wrapper == [str(site / "toolkit/lib64/libcudart.so.12")]


def test_an_unknown_major_falls_back_to_a_wheel_only_when_polygraphy_finds_none(
    tmp_path, monkeypatch, fresh_polygraphy_wrapper
):
    """With no runtime where Polygraphy looks, the newest wheel runtime is offered to it.  The file system is
    seen as on a machine without a CUDA toolkit: a libcudart outside tmp_path is not listed (this one may have
    /usr/local/cuda/lib64)."""
    import glob

    real_glob = glob.glob

    def listed(pattern, *args, **kwargs):
        found = real_glob(pattern, *args, **kwargs)
        return [f for f in found if f.startswith(str(tmp_path))] if "libcudart" in pattern else found

    monkeypatch.setattr(glob, "glob", listed)
    site = _site(tmp_path, "nvidia/cu13/lib/libcudart.so.13")
    monkeypatch.syspath_prepend(str(site))
    polygraphy_cuda(None)
    assert fresh_polygraphy_wrapper == [str(site / "nvidia/cu13/lib/libcudart.so.13")]
    assert "LD_LIBRARY_PATH" not in os.environ


def test_hint_names_a_package_that_ships_the_runtime():
    assert runtime_package(13) == "'nvidia-cuda-runtime>=13,<14'"
    assert runtime_package(12) == "nvidia-cuda-runtime-cu12"
    assert "cu13" not in cudart_hint(13) and "cu13" not in cudart_hint(None)
    assert cudart_hint(None).startswith("pip install nvidia-cuda-runtime or nvidia-cuda-runtime-cu12")


def test_tensorrt_cuda_major_from_the_installed_distribution(monkeypatch):
    from importlib import metadata

    def version(dist):
        if dist == "tensorrt-cu13":
            return "11.1.0"
        raise metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(metadata, "version", version)
    assert tensorrt_support.tensorrt_cuda_major() == 13
    monkeypatch.setattr(metadata, "version", lambda dist: (_ for _ in ()).throw(metadata.PackageNotFoundError(dist)))
    assert tensorrt_support.tensorrt_cuda_major() is None


def test_runner_finds_the_cuda13_runtime_or_names_the_package(tmp_path, monkeypatch, fresh_polygraphy_wrapper):
    """Through TensorRTRunner.load with the TensorRT stand-ins: a CUDA 13 TensorRT with the CUDA 13 runtime
    wheel installed gets that runtime; without it, the one-line error names nvidia-cuda-runtime (13.x)."""
    from trt_standins import install

    from vit5_infer.engines.errors import BackendUnavailableError
    from vit5_infer.engines.tensorrt_runner import TensorRTRunner

    install(monkeypatch, "11.1.0")
    from polygraphy.cuda import cuda as polygraphy_cuda_module

    monkeypatch.setattr(polygraphy_cuda_module, "G_CUDA", None)  # install() put a stand-in wrapper there
    monkeypatch.setattr(tensorrt_support, "tensorrt_cuda_major", lambda: 13)
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"m")

    with pytest.raises(BackendUnavailableError) as info:
        TensorRTRunner(engine).load()
    message = str(info.value)
    assert "pip install 'nvidia-cuda-runtime>=13,<14' (the CUDA 13 runtime)" in message and "\n" not in message

    site = _site(tmp_path, "nvidia/cu13/lib/libcudart.so.13")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(polygraphy_cuda_module, "G_CUDA", None)
    with pytest.raises(AttributeError):  # the recorded "library" has no cudaSetDevice: it was loaded
        TensorRTRunner(engine).load()
    assert fresh_polygraphy_wrapper[-1] == str(site / "nvidia/cu13/lib/libcudart.so.13")
    assert cuda_runtime.find_cudart(13) == site / "nvidia/cu13/lib/libcudart.so.13"
