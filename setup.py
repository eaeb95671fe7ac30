"""Build attnnorm._core (C gufuncs) with OpenMP where the compiler has it.

Set ATTNNORM_NO_OPENMP=1 to build without OpenMP (everything then runs
serially).  Set ATTNNORM_SANITIZE=1 to build with AddressSanitizer and UBSan
(-O1 -g, and -fno-wrapv so that UBSan's signed-integer-overflow check sees
the overflows Python's default -fwrapv would define away); run Python with
LD_PRELOAD=$(gcc -print-file-name=libasan.so) and ASAN_OPTIONS=detect_leaks=0;
rm -rf build before switching.  SIMD paths
are chosen at run time, so the build never uses -march=native.
"""
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _compiler_accepts(compiler, flags, link_flags):
    """Compile and link a tiny OpenMP program to see whether the flags work."""
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        fn = os.path.join(tmp, "t.c")
        with open(fn, "w") as f:
            f.write(src)
        try:
            objs = compiler.compile([fn], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objs, os.path.join(tmp, "t"), extra_postargs=link_flags)
        except Exception:
            return False
    return True


class BuildExt(build_ext):
    """Per-compiler flags: OpenMP (-fopenmp, /openmp, Apple clang -Xpreprocessor),
    C11 and optimisation."""

    def build_extensions(self):
        import numpy

        ctype = self.compiler.compiler_type
        if ctype == "msvc":
            cflags, omp_c, omp_l = ["/O2"], ["/openmp"], []
        else:
            cflags = ["-O3", "-std=c11", "-fno-strict-aliasing", "-Wall", "-Wextra",
                      "-Wno-unknown-pragmas", "-fno-trapping-math"]
            if sys.platform == "darwin":
                omp_c, omp_l = ["-Xpreprocessor", "-fopenmp"], ["-lomp"]
            else:
                omp_c, omp_l = ["-fopenmp"], ["-fopenmp"]
        use_omp = os.environ.get("ATTNNORM_NO_OPENMP", "") in ("", "0")
        if use_omp and not _compiler_accepts(self.compiler, omp_c, omp_l):
            print("attnnorm: OpenMP not available with this compiler; building serial code")
            use_omp = False
        san_c = san_l = []
        if os.environ.get("ATTNNORM_SANITIZE", "") not in ("", "0") and ctype != "msvc":
            san_l = ["-fsanitize=address,undefined"]
            san_c = san_l + ["-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined",
                             "-fno-wrapv", "-g", "-O1"]
        for ext in self.extensions:
            ext.include_dirs.append(numpy.get_include())
            ext.extra_compile_args = cflags + (omp_c if use_omp else []) + san_c
            ext.extra_link_args = (omp_l if use_omp else []) + san_l
        super().build_extensions()

    def build_extension(self, ext):
        """Compile, unless the extension next to the sources (left there by an
        editable install or build_ext --inplace) was built by this file with the
        same flags from sources that have not changed since: then copy it.  So
        `pip install -e ".[test]"` after `pip install -e .` does not compile
        the C a second time.  ATTNNORM_REBUILD=1 always compiles."""
        target = self.get_ext_fullpath(ext.name)
        inplace = os.path.join(here, *ext.name.split(".")[:-1],
                               os.path.basename(self.get_ext_filename(ext.name)))
        stamp = os.path.join(here, "build", "attnnorm-core-stamp.json")
        flags = [ext.extra_compile_args, ext.extra_link_args, ext.define_macros, sys.version]
        if (os.environ.get("ATTNNORM_REBUILD", "") in ("", "0") and not self.force
                and os.path.abspath(target) != os.path.abspath(inplace)
                and _stamp_matches(stamp, inplace, flags, ext.sources + list(ext.depends))):
            print(f"attnnorm: reusing {os.path.relpath(inplace, here)} (same sources and flags)")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(inplace, target)
            return
        super().build_extension(ext)
        try:
            os.makedirs(os.path.dirname(stamp), exist_ok=True)
            with open(stamp, "w") as f:
                json.dump({"flags": flags, "sha256": _sha256(target)}, f)
        except OSError:
            pass


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _stamp_matches(stamp, built, flags, sources):
    """Whether `built` is the file recorded in `stamp`, built with `flags`,
    and newer than every source, header and setup.py itself."""
    try:
        with open(stamp) as f:
            rec = json.load(f)
        mtime = os.path.getmtime(built)
        if rec.get("flags") != json.loads(json.dumps(flags)) or rec.get("sha256") != _sha256(built):
            return False
        return all(os.path.getmtime(os.path.join(here, p)) < mtime
                   for p in list(sources) + ["setup.py"])
    except (OSError, ValueError):
        return False


here = os.path.dirname(os.path.abspath(__file__))
# csrc/<concern>/: every folder is an include directory, every .c a source
folders = sorted(d for d in glob.glob(os.path.join(here, "csrc", "*")) if os.path.isdir(d))
sources = sorted(os.path.relpath(p, here) for d in folders for p in glob.glob(os.path.join(d, "*.c")))

setup(
    ext_modules=[
        Extension(
            "attnnorm._core",
            sources=sources,
            depends=sorted(os.path.relpath(p, here) for d in folders for p in
                           glob.glob(os.path.join(d, "*.h")) + glob.glob(os.path.join(d, "*.inc"))),
            include_dirs=[os.path.relpath(d, here) for d in folders],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        )
    ],
    cmdclass={"build_ext": BuildExt},
)
