"""Run one command (a student's Jupyter kernel) inside a bubblewrap sandbox. Standard library only.

The grader never runs student code outside this sandbox (unless told ``--no-sandbox``). What the
sandboxed process sees and may do:

- a read-only root with ``/usr``, the Python installation, a few files of ``/etc``, the course package
  (a copy of ``course_utils/`` alone: no notebooks, no tests, no ``.git``) at ``/opt/course`` and the
  dataset at ``/data``; its working directory, ``/tmp``, ``/dev/shm`` and ``$HOME`` are private,
  size-limited tmpfs; the student's own submitted files are copied into the working directory;
- one writable host folder, the ``run_dir`` holding the kernel's connection file and its unix sockets
  (the kernel talks ZMQ over ``ipc``: the sandbox has its own network namespace, so the host's
  127.0.0.1 is not reachable from inside, and nothing else is either);
- its own PID namespace: when the kernel exits, or the grader that started it dies, every process
  it started is killed (a double-forked daemon included);
- limits: memory per process (``RLIMIT_DATA``; not ``RLIMIT_AS``, which breaks CUDA's address-space
  reservations), number of processes and threads (``RLIMIT_NPROC``, counted inside the sandbox's own
  user namespace), file size, open files, no core dumps; as root with a writable cgroup, a CPU quota
  (``Limits.cpus``), so that a submission's load cannot slow a neighbour's grade.

Run as root (CI), the sandbox first drops to an unprivileged uid (``RLIMIT_NPROC`` never applies to
uid 0), and when the cgroup file system is writable it also puts the whole sandbox in its own cgroup
with a memory and a pids limit. Folders that the unprivileged uid cannot traverse (a Python under
``/root/.pyenv``, a work folder under ``/root``) are bound through a private mount namespace first.

Two stages, both this file run as a script with ``python -I -S`` (so nothing outside the standard
library, and nothing from the current directory, is imported):

- ``sandbox.py run SPEC.json -- CMD...`` on the host, as the kernel command that the kernel manager
  launches (:func:`command`): the root-only steps above, then ``exec bwrap``;
- ``/opt/grader/sandbox.py init LIMITS.json -- CMD...`` inside bwrap: set the limits, copy the
  submission into the working directory, ``exec`` the kernel.

:func:`probe` says whether bubblewrap is installed and usable here, and if not, what to install or fix.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

HOME = "/home/student"
WORKDIR = HOME + "/work"
COURSE_MOUNT = "/opt/course"      # the course package copy: PYTHONPATH inside
DATA_MOUNT = "/data"              # the dataset: COURSE_DATA inside
SELF_MOUNT = "/opt/grader/sandbox.py"
SUBMISSION_MOUNT = "/opt/grader/submission"
INSIDE_UID = 1000                 # the uid the kernel sees (its own user namespace)
DEFAULT_SANDBOX_UID = 65534       # host uid the sandbox runs as when the grader is root ("nobody")

# Host /etc files a kernel needs (dynamic loader, time zone, fonts for matplotlib, TLS roots, MIME types).
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/fonts",
             "/etc/nsswitch.conf", "/etc/mime.types", "/etc/ssl/certs", "/etc/alternatives")

INSTALL_HINT = ("install bubblewrap: `apt-get install bubblewrap` (Debian/Ubuntu), `dnf install bubblewrap` "
                "(Fedora/RHEL), `pacman -S bubblewrap` (Arch); or grade with --no-sandbox at your own risk "
                "(student code then runs with your rights and sees your files and network)")


@dataclass
class Limits:
    """Resource limits of one sandbox (bytes unless said otherwise)."""

    memory: int = 8 << 30        # RLIMIT_DATA of each process; as root with a writable cgroup, also the total
    processes: int = 512         # RLIMIT_NPROC inside the sandbox (threads count: torch starts one per core)
    file_size: int = 2 << 30     # RLIMIT_FSIZE: the largest file a process may write
    open_files: int = 4096       # RLIMIT_NOFILE
    tmpfs: int = 2 << 30         # size of each private tmpfs: the working directory's $HOME, /tmp, /dev/shm
    cpus: float = 0.0            # root with a writable cgroup: CPU time of the whole sandbox, in cores (0: none)
    run_dir: int = 512 << 20     # root: size of the run folder (the one host folder it can write), a tmpfs


@dataclass
class Spec:
    """Everything :func:`main` needs to build one sandbox; written as JSON into a trusted folder."""

    run_dir: str                                  # host folder bound read-write at the same path (sockets)
    ro: list[list[str]] = field(default_factory=list)   # [host path, sandbox path] bound read-only
    env: dict[str, str] = field(default_factory=dict)   # the kernel's whole environment
    limits: dict = field(default_factory=lambda: asdict(Limits()))
    submission: str | None = None                 # host folder whose files are copied into WORKDIR
    sandbox_uid: int = DEFAULT_SANDBOX_UID        # root only: the host uid to drop to
    cgroup: bool = True                           # root only: own cgroup (memory, pids) when writable
    cgroup_record: str | None = None              # root only: where to write the cgroups made (for cleanup)
    etc_dir: str | None = None                    # folder with the sandbox's passwd and group files
    bwrap_flags: list[str] = field(default_factory=list)  # optional flags this bwrap supports


def python_roots() -> list[str]:
    """The folders this Python needs: its prefix (a venv) and the installation the venv points to. Each is
    bound read-only at its own path, so a venv inside the repository shows that folder's name, and nothing
    else of the repository."""
    roots = []
    for p in (sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        p = os.path.realpath(p)
        if p not in roots and not any(p == r or p.startswith(r + "/") for r in roots + ["/usr"]):
            roots.append(p)
    return roots


def make_spec(run_dir: str | Path, *, course: str | Path | None, data: str | Path | None,
              submission: str | Path | None, env: dict[str, str], limits: Limits | None = None,
              sandbox_uid: int = DEFAULT_SANDBOX_UID, cgroup: bool = True,
              trusted_dir: str | Path | None = None) -> Spec:
    """The spec of one kernel sandbox.

    run_dir: host folder for the connection file and sockets (the only host folder it can write).
    course: host folder that CONTAINS the course package copy (``course/course_utils``), bound at
    /opt/course. data: the dataset folder, bound read-only at /data. submission: a host folder holding
    the student's own files (copied into the working directory). env: extra variables for the kernel
    (the rest of the grader's environment is not passed on). trusted_dir: a folder the sandbox cannot
    see, for the passwd/group files and the cgroup record (default: run_dir's parent).
    """
    trusted = Path(trusted_dir or Path(run_dir).parent)
    etc = trusted / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(f"student:x:{INSIDE_UID}:{INSIDE_UID}:student:{HOME}:/usr/sbin/nologin\n"
                                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    (etc / "group").write_text(f"student:x:{INSIDE_UID}:\nnogroup:x:65534:\n")
    for f in (etc / "passwd", etc / "group"):
        f.chmod(0o644)
    etc.chmod(0o755)
    ro = [[p, p] for p in python_roots()]
    ro += [[p, p] for p in ETC_FILES if os.path.exists(p)]
    ro += [[str(etc / "passwd"), "/etc/passwd"], [str(etc / "group"), "/etc/group"],
           [str(Path(__file__).resolve()), SELF_MOUNT]]
    kenv = {"PATH": f"{sys.prefix}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": HOME, "USER": "student",
            "LOGNAME": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp", "PYTHONDONTWRITEBYTECODE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1", "MPLCONFIGDIR": f"{HOME}/.config/matplotlib"}
    if course:
        ro.append([str(Path(course).resolve()), COURSE_MOUNT])
        kenv["PYTHONPATH"] = COURSE_MOUNT
    if data:
        ro.append([str(Path(data).resolve()), DATA_MOUNT])
        kenv["COURSE_DATA"] = DATA_MOUNT
    if submission:
        ro.append([str(Path(submission).resolve()), SUBMISSION_MOUNT])
    kenv.update(env)
    return Spec(run_dir=str(run_dir), ro=ro, env=kenv, limits=asdict(limits or Limits()),
                submission=SUBMISSION_MOUNT if submission else None, sandbox_uid=sandbox_uid, cgroup=cgroup,
                cgroup_record=str(trusted / "cgroups.json"), etc_dir=str(etc), bwrap_flags=optional_flags())


def write_spec(spec: Spec, path: str | Path) -> Path:
    Path(path).write_text(json.dumps(asdict(spec)))
    os.chmod(path, 0o600)
    return Path(path)


def command(spec_path: str | Path, cmd: list[str]) -> list[str]:
    """The command line that runs ``cmd`` in the sandbox described by ``spec_path``."""
    return [sys.executable, "-I", "-S", str(Path(__file__).resolve()), "run", str(spec_path), "--", *cmd]


# ---------------------------------------------------------------- the bwrap command line

def _base_flags() -> list[str]:
    """The namespaces and the minimal file system, shared by the sandbox and the probe."""
    args = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--hostname", "sandbox",
            "--uid", str(INSIDE_UID), "--gid", str(INSIDE_UID), "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args + ["--proc", "/proc", "--dev", "/dev"]


_FLAGS_CACHE: list[str] | None = None


def optional_flags() -> list[str]:
    """Flags that only newer bubblewraps know, used when this one does: ``--disable-userns`` (no user
    namespace inside the sandbox, 0.8) and ``--size`` (a size for each tmpfs, 0.7)."""
    global _FLAGS_CACHE
    if _FLAGS_CACHE is None:
        exe = shutil.which("bwrap")
        text = ""
        if exe:
            try:
                text = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.TimeoutExpired):
                text = ""
        _FLAGS_CACHE = [f for f in ("--disable-userns", "--size") if f in text]
    return list(_FLAGS_CACHE)


def bwrap_argv(spec: Spec, cmd: list[str], ro: list[list[str]] | None = None) -> list[str]:
    """The bwrap command line that runs ``cmd`` under ``spec`` (``ro`` replaces ``spec.ro`` if given)."""
    lim = Limits(**spec.limits)
    args = _base_flags()
    if "--disable-userns" in spec.bwrap_flags:
        args.insert(3, "--disable-userns")
    size = ["--size", str(lim.tmpfs)] if "--size" in spec.bwrap_flags else []
    args += [*size, "--tmpfs", "/dev/shm", *size, "--tmpfs", "/tmp", *size, "--tmpfs", HOME, "--dir", WORKDIR]
    for dev in sorted(Path("/dev").glob("nvidia*")):  # a GPU lab machine: the kernel may use CUDA
        args += ["--dev-bind-try", str(dev), str(dev)]
    for src, dest in (ro if ro is not None else spec.ro):
        args += ["--ro-bind", src, dest]
    args += ["--bind", spec.run_dir, spec.run_dir]
    args += ["--remount-ro", "/", "--chdir", WORKDIR, "--clearenv"]  # only the tmpfs and run_dir are writable
    for key, value in spec.env.items():
        args += ["--setenv", key, value]
    inner = {"limits": asdict(lim), "submission": spec.submission}
    return args + ["--", cmd[0], "-I", "-S", SELF_MOUNT, "init", json.dumps(inner), "--", *cmd]


# ---------------------------------------------------------------- stage 1: on the host

def _run(spec_path: str, cmd: list[str]) -> int:
    spec = Spec(**json.loads(Path(spec_path).read_text()))
    ro = spec.ro
    if os.geteuid() == 0:
        uid = gid = spec.sandbox_uid
        if spec.cgroup:
            made = cgroup_enter(f"grader-sandbox-{os.getpid()}", Limits(**spec.limits))
            if spec.cgroup_record:
                Path(spec.cgroup_record).write_text(json.dumps(made))
        for root, dirs, files in os.walk(spec.run_dir):  # the kernel creates its sockets here
            for name in [root, *(os.path.join(root, f) for f in dirs + files)]:
                os.chown(name, uid, gid, follow_symlinks=False)
        run_root = os.path.dirname(os.path.abspath(spec.run_dir))
        os.chmod(run_root, 0o711)  # traversable by the sandbox uid, not listable
        ro = _reachable_binds(ro, uid, gid, os.path.join(run_root, "mnt"))
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    # jupyter_client interrupts a kernel with SIGINT to its whole process group, bwrap included:
    # bwrap must ignore it (the init stage gives the kernel the default handler back).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    argv = bwrap_argv(spec, cmd, ro)
    exe = shutil.which("bwrap")
    if exe is None:
        print(f"sandbox: bwrap not found; {INSTALL_HINT}", file=sys.stderr)
        return 127
    os.execv(exe, argv)
    return 127  # not reached


def cgroup_enter(name: str, limits: Limits) -> list[str]:
    """Root only: make cgroup ``name`` below this process's own, with memory and pids limits, and move
    this process into it. Returns the folders made ([] when the cgroup file system is not writable)."""
    made: list[str] = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # cgroup v2
            rel = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
            folder = Path("/sys/fs/cgroup" + rel.rstrip("/")) / name
            folder.mkdir()
            made.append(str(folder))
            (folder / "memory.max").write_text(str(limits.memory))
            if (folder / "memory.swap.max").exists():
                (folder / "memory.swap.max").write_text("0")
            (folder / "pids.max").write_text(str(limits.processes))
            if limits.cpus > 0 and (folder / "cpu.max").exists():
                (folder / "cpu.max").write_text(f"{max(1000, int(limits.cpus * 100_000))} 100000")
            (folder / "cgroup.procs").write_text(str(os.getpid()))
            return made
        controllers = [("memory", {"memory.limit_in_bytes": limits.memory}), ("pids", {"pids.max": limits.processes})]
        if limits.cpus > 0 and any("cpu" in line.split(":")[1].split(",") for line in lines if line.count(":") >= 2):
            controllers.append(("cpu", {"cpu.cfs_period_us": 100_000,
                                        "cpu.cfs_quota_us": max(1000, int(limits.cpus * 100_000))}))
        for controller, settings in controllers:  # cgroup v1
            rel = next(line.split(":", 2)[2] for line in lines if controller in line.split(":")[1].split(","))
            folder = Path(f"/sys/fs/cgroup/{controller}" + rel.rstrip("/")) / name
            folder.mkdir()
            made.append(str(folder))
            for key, value in settings.items():
                (folder / key).write_text(str(value))
            (folder / "cgroup.procs").write_text(str(os.getpid()))
    except (OSError, StopIteration) as err:
        print(f"sandbox: no cgroup limits ({err}); the per-process limits still apply", file=sys.stderr)
    return made


def mount_run_dir(path: str | Path, size: int) -> bool:
    """Root only: mount a tmpfs of ``size`` bytes on the (empty) host folder ``path``, so that what the
    sandbox writes there cannot fill the grader's disk. False (and nothing done) when that is not possible."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    options = f"size={int(size)},mode=0755".encode()
    return libc.mount(b"tmpfs", os.fsencode(str(path)), b"tmpfs", 0, options) == 0


def unmount_run_dir(path: str | Path) -> None:
    """Undo :func:`mount_run_dir` (lazily: a process still holding a file does not keep it mounted)."""
    if os.geteuid() == 0 and os.path.ismount(path):
        ctypes.CDLL(None, use_errno=True).umount2(os.fsencode(str(path)), 2)  # MNT_DETACH


def cgroup_cleanup(folders: list[str]) -> None:
    """Kill whatever is left in the sandbox's cgroups and remove them (the grader calls it afterwards)."""
    import time
    for folder in folders:
        path = Path(folder)
        for _ in range(100):
            try:
                if (path / "cgroup.kill").exists():
                    (path / "cgroup.kill").write_text("1")
                else:
                    for pid in (path / "cgroup.procs").read_text().split():
                        os.kill(int(pid), signal.SIGKILL)
                path.rmdir()
                break
            except (FileNotFoundError, ProcessLookupError):
                if not path.exists():
                    break
            except OSError:
                time.sleep(0.05)


def _can_reach(path: str, uid: int, gid: int) -> bool:
    """Can ``uid``/``gid`` (no supplementary groups) traverse to ``path`` and read it?"""
    target = Path(path).resolve()
    for folder in [*reversed(target.parents), target]:
        st = folder.stat()
        bits = (st.st_mode >> 6 if st.st_uid == uid else st.st_mode >> 3 if st.st_gid == gid else st.st_mode) & 0o7
        if folder != target:
            need = 0o1                                    # search permission on every parent
        else:
            need = 0o5 if stat.S_ISDIR(st.st_mode) else 0o4
        if bits & need != need:
            return False
    return True


def _reachable_binds(ro: list[list[str]], uid: int, gid: int, scratch: str) -> list[list[str]]:
    """Root only: every bind source that ``uid`` cannot reach is bound, in a private mount namespace of
    this process (invisible to the host), onto a folder it can reach; returns the new bind list."""
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private, ms_bind = 0x20000, 0x4000, 1 << 18, 0x1000
    out, private = [], False
    for i, (src, dest) in enumerate(ro):
        if _can_reach(src, uid, gid):
            out.append([src, dest])
            continue
        if not private:
            if libc.unshare(clone_newns) or libc.mount(b"none", b"/", None, ms_rec | ms_private, None):
                raise OSError(ctypes.get_errno(), f"sandbox: no private mount namespace to reach {src}")
            os.makedirs(scratch, mode=0o755, exist_ok=True)
            os.chmod(scratch, 0o755)
            private = True
        mount_point = os.path.join(scratch, str(i))
        if os.path.isdir(src):
            os.makedirs(mount_point, exist_ok=True)
        else:
            open(mount_point, "a").close()
        if libc.mount(os.fsencode(src), os.fsencode(mount_point), None, ms_bind, None):
            raise OSError(ctypes.get_errno(), f"sandbox: cannot bind {src}")
        out.append([mount_point, dest])
    return out


# ---------------------------------------------------------------- stage 2: inside the sandbox

def _init(inner_json: str, cmd: list[str]) -> int:
    import resource
    inner = json.loads(inner_json)
    lim = Limits(**inner["limits"])
    # RLIMIT_NPROC is set here, inside the user namespace that bwrap made: it counts this sandbox's
    # processes only, not the grader's or another sandbox's.
    for res, value in ((resource.RLIMIT_DATA, lim.memory), (resource.RLIMIT_NPROC, lim.processes),
                       (resource.RLIMIT_FSIZE, lim.file_size), (resource.RLIMIT_NOFILE, lim.open_files),
                       (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(res, (value, value))
    try:  # the kernel's out-of-memory killer picks sandboxed processes first
        Path("/proc/self/oom_score_adj").write_text("1000")
    except OSError:
        pass
    if inner.get("submission") and os.path.isdir(inner["submission"]):
        shutil.copytree(inner["submission"], os.getcwd(), dirs_exist_ok=True)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execv(cmd[0], cmd)
    return 127  # not reached


# ---------------------------------------------------------------- can we sandbox here?

_PROBE_CACHE: dict[tuple[int, str], tuple[bool, str]] = {}


def probe(sandbox_uid: int = DEFAULT_SANDBOX_UID, timeout: float = 20) -> tuple[bool, str]:
    """``(usable, message)``: can bubblewrap make the sandbox here, as the account it will run as?

    The message says what works, or what to install or fix. A working bwrap is tried once per process.
    """
    if not sys.platform.startswith("linux"):
        return False, (f"the sandbox needs Linux (bubblewrap); this is {sys.platform}. Grade on a Linux machine, "
                       "or with --no-sandbox at your own risk")
    exe = shutil.which("bwrap")
    if exe is None:
        return False, f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}"
    if (sandbox_uid, exe) in _PROBE_CACHE:
        return _PROBE_CACHE[(sandbox_uid, exe)]
    preexec = None
    if os.geteuid() == 0:
        def preexec():
            os.setgroups([])
            os.setresgid(sandbox_uid, sandbox_uid, sandbox_uid)
            os.setresuid(sandbox_uid, sandbox_uid, sandbox_uid)
    args = _base_flags()
    if "--disable-userns" in optional_flags():
        args.insert(3, "--disable-userns")
    args += ["--unshare-net", "--", "/bin/sh", "-c", "exit 0"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, preexec_fn=preexec,
                              cwd="/")
    except subprocess.TimeoutExpired:
        result = (False, f"bwrap did not finish its self-test within {timeout:g} s")
    else:
        if done.returncode == 0:
            version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
            who = f" (as uid {sandbox_uid}, from root)" if os.geteuid() == 0 else ""
            result = (True, f"{version or 'bwrap'} works here{who}")
        else:
            err = " ".join(done.stderr.split())[:300]
            hint = ("user namespaces are disabled or restricted for unprivileged users: check "
                    "`sysctl user.max_user_namespaces` (must be > 0), `kernel.unprivileged_userns_clone` "
                    "(Debian: 1), Ubuntu 24.04's `kernel.apparmor_restrict_unprivileged_userns` (an AppArmor "
                    "profile for bwrap, or 0), or run the grader outside a container whose seccomp profile "
                    "blocks unshare")
            result = (False, f"bwrap is installed but cannot make a sandbox here: {err}; {hint}")
    _PROBE_CACHE[(sandbox_uid, exe)] = result
    return result


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] in ("run", "init") and argv[2] == "--":
        return (_run if argv[0] == "run" else _init)(argv[1], argv[3:])
    print("usage: sandbox.py run SPEC.json -- CMD... | sandbox.py init INNER_JSON -- CMD...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
