"""Headless offscreen MuJoCo rendering, shared by the VPDD data (envs/metaworld_video.py,
envs/actionless_video.py).

Headless rendering needs EGL: Debian's ``libegl1``, ``libegl-mesa0`` and ``libgl1-mesa-dri``
(:func:`check_render_libraries` says which are missing). :func:`configure_headless_rendering`
sets ``MUJOCO_GL=egl`` (unless set); the renderer reads ``MUJOCO_GL`` when it is built, not when
mujoco is imported, so calling it after mujoco was imported (by another env module) still works.
It cannot change ``PYOPENGL_PLATFORM`` once PyOpenGL itself has been imported with another
platform; no other module of this project imports PyOpenGL.

:class:`OffscreenRenderer` is our own, not gymnasium's: gymnasium's renderer only makes its GL
context current when an env holds more than one viewer, so with two envs alive, or after one env
was closed and collected, frames come out black or from the wrong context. Ours makes its context
current before every frame and frees its GL objects with its own context current.
"""

from __future__ import annotations

import atexit
import glob
import os
import subprocess
import sys
import weakref
from functools import lru_cache

import numpy as np

# ------------------------------------------------------------------------------------------------
# headless rendering
# ------------------------------------------------------------------------------------------------

# Debian package -> (what it provides, how it is found)
RENDER_PACKAGES: dict[str, str] = {
    "libegl1": "libEGL.so.1",
    "libegl-mesa0": "libEGL_mesa.so.0",
    "libgl1-mesa-dri": "swrast_dri.so",
}
_LIB_DIRS = (
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/lib64",
    "/lib",
)


@lru_cache(maxsize=1)
def _ldconfig_paths() -> tuple[str, ...]:
    """Paths of the shared libraries in the dynamic linker's cache (``ldconfig -p``)."""
    for exe in ("ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"):
        try:
            out = subprocess.run([exe, "-p"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        return tuple(line.rsplit("=>", 1)[1].strip() for line in out.splitlines() if "=>" in line)
    return ()


def _find_render_library(filename: str) -> str | None:
    """Where ``filename`` is installed, or None. DRI drivers (``*_dri.so``) are looked for in the
    ``dri/`` folders of the library directories (and ``$LIBGL_DRIVERS_PATH``); other libraries in
    the linker cache, ``$LD_LIBRARY_PATH`` and the usual library directories."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d] + list(_LIB_DIRS)
    if filename.endswith("_dri.so"):
        extra = [d for d in os.environ.get("LIBGL_DRIVERS_PATH", "").split(":") if d]
        for d in extra + [os.path.join(d, "dri") for d in dirs]:
            if os.path.exists(os.path.join(d, filename)):
                return os.path.join(d, filename)
        hits = glob.glob(f"/usr/lib*/**/dri/{filename}", recursive=True)
        return hits[0] if hits else None
    for path in _ldconfig_paths():
        if os.path.basename(path) == filename and os.path.exists(path):
            return path
    for d in dirs:
        if os.path.exists(os.path.join(d, filename)):
            return os.path.join(d, filename)
    return None


def check_render_libraries() -> None:
    """Raise a RuntimeError naming each missing Debian package that EGL rendering needs
    (``libegl1``: libEGL.so.1; ``libegl-mesa0``: libEGL_mesa.so.0; ``libgl1-mesa-dri``: the DRI
    driver swrast_dri.so) and the apt command that installs them. Linux only; elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    missing = [pkg for pkg, lib in RENDER_PACKAGES.items() if _find_render_library(lib) is None]
    if missing:
        what = ", ".join(f"{pkg} ({RENDER_PACKAGES[pkg]})" for pkg in missing)
        raise RuntimeError(
            f"headless MuJoCo rendering (EGL) needs Debian packages that are missing: {what}. "
            f"Install them with: apt-get update && apt-get install -y {' '.join(missing)}"
        )


def configure_headless_rendering() -> str:
    """Set the environment for headless EGL rendering (each only if not already set):
    ``MUJOCO_GL=egl``, ``PYOPENGL_PLATFORM=egl``, ``GALLIUM_DRIVER=llvmpipe`` (Mesa's software
    rasteriser, used when there is no GPU). Returns the MuJoCo GL backend that will be used.

    Safe to call after ``mujoco`` was imported: :class:`OffscreenRenderer` picks its GL context
    from ``MUJOCO_GL`` when it is built."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    os.environ.setdefault("GALLIUM_DRIVER", "llvmpipe")
    return os.environ["MUJOCO_GL"].lower()


def _gl_context_class(backend: str):
    if backend == "egl":
        from mujoco.egl import GLContext
    elif backend == "osmesa":
        from mujoco.osmesa import GLContext
    elif backend in ("glfw", ""):
        from mujoco.glfw import GLContext
    else:
        raise RuntimeError(f"unsupported MUJOCO_GL={backend!r} for offscreen rendering (use egl or osmesa)")
    return GLContext


_LIVE_RENDERERS: weakref.WeakSet = weakref.WeakSet()
_EXIT_HOOK = False


def _close_live_renderers() -> None:
    for r in list(_LIVE_RENDERERS):
        r.close()


class OffscreenRenderer:
    """One MuJoCo model rendered offscreen at ``width`` x ``height`` with its own GL context.

    Made current before every frame, so any number of renderers (and envs) can live side by side;
    :meth:`close` frees the GL objects with this context current, then the context. Shadows and
    reflections are off, and so is multisampling unless ``msaa_samples`` says
    otherwise (these change the model's visual settings). ``camera``: a camera name of the model, or a dict of free
    camera settings (``distance``, ``azimuth``, ``elevation``, ``lookat``) as gymnasium's
    ``default_camera_config``. :meth:`render` returns the frame upright in the usual image
    convention (row 0 at the top), i.e. what gymnasium's ``env.render()`` returns."""

    # class-level: close() (also from __del__) must work on an instance whose __init__ failed early
    _ctx = None
    _con = None

    def __init__(
        self, model, width: int, height: int, camera: str | dict, max_geom: int = 10000, msaa_samples: int | None = 0
    ):
        import mujoco

        backend = configure_headless_rendering()
        if backend == "egl":
            check_render_libraries()
        self._mj = mujoco
        self.model = model
        self.width, self.height = int(width), int(height)
        # the offscreen framebuffer is sized from the model when the MjrContext is made
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), self.width)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), self.height)
        if msaa_samples is not None:  # None: keep the model's (MuJoCo's default is 4)
            model.vis.quality.offsamples = int(msaa_samples)
        self._ctx = _gl_context_class(backend)(self.width, self.height)
        self._ctx.make_current()
        self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._scene = mujoco.MjvScene(model, max_geom)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
            self._scene.flags[flag] = 0
        self._opt = mujoco.MjvOption()
        self._rect = mujoco.MjrRect(0, 0, self.width, self.height)
        self._cam = mujoco.MjvCamera()
        if isinstance(camera, str):
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if cam_id < 0:
                raise ValueError(f"the model has no camera named {camera!r}")
            self._cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            self._cam.fixedcamid = cam_id
        else:
            mujoco.mjv_defaultFreeCamera(model, self._cam)
            self._cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            for key, value in camera.items():
                if isinstance(value, np.ndarray) or isinstance(value, (list, tuple)):
                    getattr(self._cam, key)[:] = value
                else:
                    setattr(self._cam, key, value)
        self._buf = np.empty((self.height, self.width, 3), dtype=np.uint8)
        global _EXIT_HOOK
        if not _EXIT_HOOK:
            # registered after mujoco.egl's eglTerminate hook, so it runs before it
            atexit.register(_close_live_renderers)
            _EXIT_HOOK = True
        _LIVE_RENDERERS.add(self)

    def render(self, data) -> np.ndarray:
        """The frame of ``data``'s current state: uint8 ``[height, width, 3]``, row 0 at the top."""
        mj = self._mj
        if self._con is None:
            raise RuntimeError("renderer is closed")
        self._ctx.make_current()
        mj.mjv_updateScene(self.model, data, self._opt, None, self._cam, mj.mjtCatBit.mjCAT_ALL, self._scene)
        mj.mjr_render(self._rect, self._scene, self._con)
        mj.mjr_readPixels(self._buf, None, self._rect, self._con)
        return self._buf[::-1].copy()  # OpenGL reads bottom-up

    def close(self) -> None:
        if self._con is not None:
            try:
                self._ctx.make_current()
                self._con.free()
            except Exception:  # noqa: BLE001 - the display may already be gone at interpreter exit
                pass
            self._con = None
        if self._ctx is not None:
            try:
                self._ctx.free()
            except Exception:  # noqa: BLE001
                pass
            self._ctx = None

    def __del__(self):
        self.close()
