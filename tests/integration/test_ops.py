#!/usr/bin/env python3
"""How spool is run and deployed, checked with the real tools: docker-compose config,
systemd-analyze verify, the Kubernetes manifests parsed and cross-checked, deploy/
redis.conf in a real redis-server (noeviction refusing a write), the Dockerfile's
runtime packages against what the built binaries link, scripts/run.sh's refusals, and
`make run` + `make demo` end to end: tagged logs, Ctrl-C stopping workers, then the API,
then Redis, nothing left running, a job given back at shutdown finishing after a
restart from the same var/ directory.

Tests that need a binary that is not built yet report "ok N - name # SKIP <why>"."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, ROOT, SANITIZED, eq, ffprobe, free_port, make_clip, wait_until  # noqa: E402
from test_spoolctl import Skip, SkippingSuite  # noqa: E402

suite = SkippingSuite("ops")
DEPLOY = os.path.join(ROOT, "deploy")
SYS_PYTHON = "/usr/bin/python3"  # Debian's, with python3-yaml (a docker-compose dependency)
SPOOL_BINS = ("spool-api", "spool-video", "spool-pdf", "spoolctl")


def run(cmd, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("timeout", 120)
    p = subprocess.run(cmd, **kw)
    return p.returncode, (p.stdout or b"").decode(errors="replace"), (p.stderr or b"").decode(errors="replace")


def yaml_docs(path_or_text, is_text=False):
    """Every YAML document in a file (or text), through Debian's python3-yaml."""
    if not os.access(SYS_PYTHON, os.X_OK):
        raise Skip("no /usr/bin/python3")
    code = ("import json, sys, yaml\n"
            "print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d is not None]))")
    data = path_or_text if is_text else open(path_or_text).read()
    rc, out, err = run([SYS_PYTHON, "-c", code], input=data.encode())
    if rc != 0 and "No module named 'yaml'" in err:
        raise Skip("python3-yaml is not installed")
    if rc != 0:
        raise AssertionError(f"YAML error in {'text' if is_text else path_or_text}:\n{err}")
    return json.loads(out)


def seconds(text):
    """'40s', '1m30s', '2m', '45' (a duration in compose or spool syntax) -> seconds."""
    total, found = 0.0, False
    for num, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)?", str(text)):
        found = True
        total += float(num) * {"ms": 0.001, "h": 3600, "m": 60, "s": 1, "": 1}[unit]
    assert found, f"not a duration: {text!r}"
    return total


def bin_path(name):
    p = os.path.join(BIN, name)
    return p if os.access(p, os.X_OK) else None


# ---- docker-compose.yml ---------------------------------------------------------------

@suite.test
def test_compose_file_is_valid_and_workers_scale(ctx):
    assert shutil.which("docker-compose"), "docker-compose is missing (make deps installs it)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    rc, out, err = run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                        "config"], env=env, cwd=ROOT)
    eq(rc, 0, f"docker-compose config (stderr: {err})")
    cfg = yaml_docs(out, is_text=True)[0]
    svc = cfg["services"]
    eq(sorted(svc), ["api", "pdf-worker", "redis", "video-worker"], "services")

    for name in ("video-worker", "pdf-worker"):
        s = svc[name]
        assert "container_name" not in s and "ports" not in s, f"{name} could not scale"
        grace = seconds(s["environment"]["SPOOL_GRACE"])
        assert seconds(s["stop_grace_period"]) > grace, \
            f"{name}: stop_grace_period {s['stop_grace_period']} <= SPOOL_GRACE {grace}"
        eq(s["depends_on"]["redis"]["condition"], "service_healthy", f"{name} waits for redis")
        eq(s["healthcheck"]["test"], ["NONE"], f"{name}: the API's health check is off")
    api = svc["api"]
    assert seconds(api["stop_grace_period"]) > seconds(api["environment"]["SPOOL_SHUTDOWN_GRACE"])
    eq(api["ports"], ["127.0.0.1:8080:8080/tcp"], "API published on loopback only")
    assert "spoolctl" in api["healthcheck"]["test"] and "--ready" in api["healthcheck"]["test"]

    # One image for the three, built from deploy/Dockerfile; one blob volume shared.
    for name in ("api", "video-worker", "pdf-worker"):
        eq(svc[name]["image"], "spool:latest", f"{name} image")
        eq(svc[name]["build"]["dockerfile"], "deploy/Dockerfile", f"{name} dockerfile")
        eq(svc[name]["volumes"], ["blobs:/var/lib/spool/data:rw"], f"{name} blob volume")
        eq(svc[name]["environment"]["SPOOL_REDIS_URL"], "redis://redis:6379/0", f"{name} redis")
        eq(svc[name]["environment"]["SPOOL_DATA_DIR"], "/var/lib/spool/data", f"{name} data dir")
    assert os.path.isfile(os.path.join(ROOT, "deploy", "Dockerfile"))

    r = svc["redis"]
    # Redis is built here too (Debian's redis-server), so compose needs no registry.
    eq(r["image"], "spool-redis:latest", "redis image")
    eq(r["build"]["context"], os.path.join(ROOT, "deploy", "redis"), "redis build context")
    assert "/usr/local/etc/redis/redis.conf" in r["command"], r["command"]
    assert f"{ROOT}/deploy/redis.conf:/usr/local/etc/redis/redis.conf:ro" in r["volumes"], r["volumes"]
    assert "redis-data:/data:rw" in r["volumes"], "named volume for the AOF"
    eq(r["healthcheck"]["test"], ["CMD", "redis-cli", "ping"], "redis health check")
    eq(sorted(cfg["volumes"]), ["blobs", "redis-data"], "named volumes")

    # The documented overrides work.
    env2 = dict(env, SPOOL_API_PORT="9000", SPOOL_API_TOKENS="t1,t2")
    rc, out, err = run(["docker-compose", "-f", os.path.join(ROOT, "docker-compose.yml"),
                        "config"], env=env2, cwd=ROOT)
    eq(rc, 0, err)
    api = yaml_docs(out, is_text=True)[0]["services"]["api"]
    eq(api["ports"], ["127.0.0.1:9000:8080/tcp"], "SPOOL_API_PORT")
    eq(api["environment"]["SPOOL_API_TOKENS"], "t1,t2", "SPOOL_API_TOKENS")


def compose_config(files, env=None):
    """`docker-compose -f F... config` as a dict, in an environment without SPOOL_*."""
    assert shutil.which("docker-compose"), "docker-compose is missing (make deps installs it)"
    e = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
    e.update(env or {})
    argv = ["docker-compose"]
    for f in files:
        argv += ["-f", os.path.join(ROOT, f)]
    rc, out, err = run(argv + ["config"], env=e, cwd=ROOT)
    eq(rc, 0, f"docker-compose {' '.join(files)} config (stderr: {err})")
    return yaml_docs(out, is_text=True)[0]


@suite.test
def test_compose_s3_mode_adds_the_store_and_shares_no_volume(ctx):
    files = ("docker-compose.yml", "docker-compose.s3.yml")
    cfg = compose_config(files)
    svc = cfg["services"]
    eq(sorted(svc), ["api", "pdf-worker", "redis", "s3", "video-worker"], "services")

    s3 = svc["s3"]
    eq(s3["image"], "spool-s3:latest", "s3 image")
    eq(s3["build"]["dockerfile"], "deploy/s3/Dockerfile", "s3 dockerfile")
    eq(s3["volumes"], ["s3-data:/data:rw"], "the store's own volume")
    assert "ports" not in s3, "the store is reachable on the project's network only"
    assert s3["healthcheck"]["test"][0] == "CMD", s3["healthcheck"]
    store = s3["environment"]
    eq(store["S3_LISTEN"], "0.0.0.0:9000", "store address")

    for name in ("api", "video-worker", "pdf-worker"):
        s = svc[name]
        env = s["environment"]
        # The bucket the store creates at start is the one spool uses, with its keys.
        eq(env["SPOOL_BLOB_URL"], f"s3://{store['S3_BUCKET']}/", f"{name} SPOOL_BLOB_URL")
        eq(env["SPOOL_S3_ENDPOINT"], "http://s3:9000", f"{name} endpoint")
        eq(env["SPOOL_S3_PATH_STYLE"], "1", f"{name} path style")
        eq(env["SPOOL_S3_REGION"], store["S3_REGION"], f"{name} region")
        eq((env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]),
           (store["S3_ACCESS_KEY"], store["S3_SECRET_KEY"]), f"{name} credentials")
        eq(env["SPOOL_DOWNLOADS"], "stream", f"{name}: downloads pass through the API")
        eq(s["depends_on"]["s3"]["condition"], "service_healthy", f"{name} waits for the store")
        # Only an anonymous volume of its own (compose put it in the shared one's place).
        eq(s["volumes"], ["/var/lib/spool/data"], f"{name} volumes")
        assert env["SPOOL_SCRATCH_DIR"].startswith("/var/lib/spool/data/"), \
            f"{name}: scratch {env['SPOOL_SCRATCH_DIR']} is not on its own volume"
    # Each named volume belongs to one service.
    for name, s in svc.items():
        for v in s.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) and ":" in v else None
            if src in cfg["volumes"]:
                eq(src, {"redis": "redis-data", "s3": "s3-data"}.get(name), f"{name} mounts {src}")

    # The keys and the bucket are one setting each, for the store and for spool.
    cfg = compose_config(files, {"SPOOL_S3_ACCESS_KEY": "k1", "SPOOL_S3_SECRET_KEY": "s1",
                                 "SPOOL_S3_BUCKET": "b1", "SPOOL_API_PORT": "9001"})
    svc = cfg["services"]
    eq((svc["s3"]["environment"]["S3_ACCESS_KEY"], svc["s3"]["environment"]["S3_SECRET_KEY"],
        svc["s3"]["environment"]["S3_BUCKET"]), ("k1", "s1", "b1"), "store settings")
    for name in ("api", "video-worker", "pdf-worker"):
        env = svc[name]["environment"]
        eq((env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["SPOOL_BLOB_URL"]),
           ("k1", "s1", "s3://b1/"), f"{name} settings")
    eq(svc["api"]["ports"], ["127.0.0.1:9001:8080/tcp"], "SPOOL_API_PORT")


@suite.test
def test_every_dockerfile_starts_from_the_base_images_and_installs_real_packages(ctx):
    """deploy/Dockerfile, deploy/redis/ and deploy/s3/ build from debian:bookworm(-slim),
    which scripts/base-images.sh makes when no registry gives them; what they install
    exists in Debian 12; they run as numeric non-root users; what they copy exists."""
    files = ["Dockerfile", "redis/Dockerfile", "s3/Dockerfile"]
    text = open(os.path.join(ROOT, "scripts", "base-images.sh")).read()
    made = set(re.findall(r"\bdebian:\$suite(?:-slim)?\b", text))
    eq(sorted(made), ["debian:$suite", "debian:$suite-slim"], "tags base-images.sh makes")
    assert re.search(r"^suite=bookworm$", text, re.M), "base-images.sh bootstraps bookworm"
    pkgs = set()
    for f in files:
        path = os.path.join(DEPLOY, f)
        joined = re.sub(r"\\\n", " ", open(path).read())
        lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        froms = [ln.split()[1] for ln in lines if ln.upper().startswith("FROM ")]
        stages = {ln.split()[3] for ln in lines if ln.upper().startswith("FROM ") and len(ln.split()) > 3}
        assert froms, f"{f}: no FROM"
        for img in froms:
            assert img in ("debian:bookworm", "debian:bookworm-slim"), \
                f"{f}: FROM {img} is not an image scripts/base-images.sh makes"
        pkgs |= set(apt_packages(lines))
        users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
        assert users and users[-1].split(":")[0].isdigit() and int(users[-1].split(":")[0]) > 0, \
            f"{f}: USER must be a numeric non-root uid ({users})"
        context = ROOT if f != "redis/Dockerfile" else os.path.join(DEPLOY, "redis")
        for ln in lines:
            if ln.startswith("COPY ") and "--from=" not in ln:
                for src in ln.split()[1:-1]:
                    assert src == "." or os.path.exists(os.path.join(context, src)), \
                        f"{f}: COPY {src}: not in the build context"
            if ln.startswith("COPY --from="):
                assert ln.split()[1][len("--from="):] in stages, f"{f}: {ln}"
    assert os.access(os.path.join(DEPLOY, "s3", "spool-s3.sh"), os.X_OK), "spool-s3.sh executable"
    if shutil.which("apt-cache"):
        rc, out, err = run(["apt-cache", "show", "--no-all-versions", *sorted(pkgs)])
        known = set(re.findall(r"^Package: (\S+)$", out, re.M))
        eq(sorted(pkgs - known), [], f"packages Debian 12 does not have ({err.strip()})")
    rc, out, err = run(["bash", "-n", os.path.join(ROOT, "scripts", "base-images.sh")])
    eq(rc, 0, f"bash -n base-images.sh: {err}")
    rc, out, err = run(["bash", "-n", os.path.join(DEPLOY, "s3", "spool-s3.sh")])
    eq(rc, 0, f"bash -n spool-s3.sh: {err}")


# ---- the Dockerfile ---------------------------------------------------------------------

def dockerfile_stages():
    """[(from_line, [instructions with continuation lines joined])] per stage."""
    stages = []
    text = open(os.path.join(DEPLOY, "Dockerfile")).read()
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append((line, []))
        else:
            assert stages, f"instruction before FROM: {line}"
            stages[-1][1].append(line)
    return stages


def apt_packages(instructions):
    pkgs = []
    for ins in instructions:
        for m in re.finditer(r"apt-get install ([^&]*)", ins):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def ignore_entries(path):
    """The patterns of a .dockerignore file, sorted, without comments and blank lines."""
    assert os.path.isfile(path), f"{path} is missing"
    with open(path) as f:
        return sorted(ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#"))


@suite.test
def test_dockerfile_is_multi_stage_slim_non_root_with_a_health_check(ctx):
    stages = dockerfile_stages()
    eq(len(stages), 2, "stages")
    eq(stages[0][0], "FROM debian:bookworm AS build", "build stage")
    eq(stages[1][0], "FROM debian:bookworm-slim", "runtime stage")
    build_pkgs, run_pkgs = apt_packages(stages[0][1]), apt_packages(stages[1][1])
    rt = stages[1][1]

    # The build stage installs every -dev package make needs (deps/debian.txt's build part).
    want = []
    section = None
    for line in open(os.path.join(ROOT, "deps", "debian.txt")):
        line = line.strip()
        if line.startswith("#"):
            section = line
            continue
        if line and section == "# build":
            want.append(line)
    missing = [p for p in want if p not in build_pkgs]
    eq(missing, [], "build packages of deps/debian.txt missing from the build stage")

    # The runtime stage: libraries only, no compilers or headers.
    bad = [p for p in run_pkgs if p.endswith("-dev") or p in ("gcc", "make", "pkg-config")]
    eq(bad, [], "build packages in the runtime stage")
    for p in ("fonts-dejavu-core", "fonts-wqy-microhei", "ca-certificates"):
        assert p in run_pkgs, f"{p} missing from the runtime stage"
    # Every package name exists in Debian 12 (the apt lists on this machine).
    if shutil.which("apt-cache"):
        rc, out, err = run(["apt-cache", "show", "--no-all-versions", *build_pkgs, *run_pkgs])
        known = set(re.findall(r"^Package: (\S+)$", out, re.M))
        eq(sorted(set(build_pkgs + run_pkgs) - known), [], f"packages Debian 12 does not have ({err.strip()})")

    copies = [i for i in rt if i.startswith("COPY --from=build")]
    eq(len(copies), 1, "one COPY from the build stage")
    for b in SPOOL_BINS:
        assert f"/src/bin/{b}" in copies[0], f"{b} not copied into the image"
    user = [i for i in rt if i.startswith("USER ")]
    eq(len(user), 1, "USER")
    uid = user[0].split()[1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, f"USER must be a numeric non-root uid, not {uid}"
    health = [i for i in rt if i.startswith("HEALTHCHECK ")]
    eq(len(health), 1, "HEALTHCHECK")
    assert '"spoolctl"' in health[0] and '"health"' in health[0], health[0]
    assert any(i.startswith("STOPSIGNAL SIGTERM") for i in rt), "STOPSIGNAL"
    assert any(i.startswith('CMD ["spool-api"]') for i in rt), "CMD"
    # The health check's command line is one spoolctl accepts.
    args = json.loads(health[0][health[0].index("["):])[1:]
    if bin_path("spoolctl"):
        rc, out, err = run([bin_path("spoolctl"), *args, "--help"])
        eq(rc, 0, f"spoolctl {args} --help: {err}")
    # BuildKit reads deploy/Dockerfile.dockerignore, a legacy builder only the context's
    # .dockerignore: both must leave out the same things (var/, .git, build/...).
    ignored = ignore_entries(os.path.join(ROOT, ".dockerignore"))
    eq(ignored, ignore_entries(os.path.join(DEPLOY, "Dockerfile.dockerignore")),
       ".dockerignore entries (those of deploy/Dockerfile.dockerignore)")
    for must in (".git", "build", "bin", "var"):
        assert must in ignored, f"{must} is not ignored: it would be sent as build context"


@suite.test
def test_runtime_packages_cover_every_library_the_binaries_link(ctx):
    present = [b for b in SPOOL_BINS if bin_path(b)]
    if not present:
        raise Skip("no spool binary built")
    if SANITIZED:
        raise Skip("the sanitizer build links its own runtime; checked in the release build")
    run_pkgs = set(apt_packages(dockerfile_stages()[1][1]))
    checked = []
    for b in present:
        rc, out, err = run(["objdump", "-p", bin_path(b)])
        eq(rc, 0, err)
        needed = re.findall(r"^\s*NEEDED\s+(\S+)$", out, re.M)
        rc, ldd, err = run(["ldd", bin_path(b)])
        eq(rc, 0, err)
        where = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
        # Ask dpkg once about every spelling of every path (merged /usr: /lib vs /usr/lib).
        cands = {}
        for lib in needed:
            path = where.get(lib)
            assert path, f"{b}: ldd does not resolve {lib}"
            alts = []
            for cand in (path, os.path.realpath(path)):
                alts += [cand, re.sub(r"^/usr/lib/", "/lib/", cand), re.sub(r"^/lib/", "/usr/lib/", cand)]
            cands[lib] = list(dict.fromkeys(alts))
        rc, out, _ = run(["dpkg", "-S", *sorted({a for alts in cands.values() for a in alts})])
        owner = {}
        for line in out.splitlines():
            pkgs, _, path = line.partition(": ")
            owner[path.strip()] = pkgs.split(",")[0].split(":")[0].strip()
        for lib, alts in cands.items():
            pkg = next((owner[a] for a in alts if a in owner), None)
            assert pkg, f"{b}: no package owns {where[lib]}"
            if pkg != "libc6":
                assert pkg in run_pkgs, f"{b} links {lib} from {pkg}, which the image does not install"
            checked.append((b, lib, pkg))
    assert checked
    if "spool-pdf" in present:
        assert "fonts-dejavu-core" in run_pkgs and "fonts-wqy-microhei" in run_pkgs
    print(f"# checked {len(checked)} libraries of {', '.join(present)}")
    if len(present) < len(SPOOL_BINS):
        print(f"# not built yet: {', '.join(sorted(set(SPOOL_BINS) - set(present)))}")


# ---- deploy/redis.conf in a real Redis --------------------------------------------------

@suite.test
def test_redis_conf_gives_aof_and_noeviction_in_a_real_redis(ctx):
    d = tempfile.mkdtemp(prefix="spool-ops-redis-", dir=suite.tmp)
    port = free_port()
    p = subprocess.Popen(["redis-server", os.path.join(DEPLOY, "redis.conf"), "--port", str(port),
                          "--dir", d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def cli(*args):
        rc, out, err = run(["redis-cli", "-p", str(port), *map(str, args)], timeout=10)
        return out.strip()
    try:
        wait_until(lambda: p.poll() is not None or cli("PING") == "PONG", 10, what="redis")
        assert p.poll() is None, p.stdout.read().decode()
        want = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction",
                "timeout": "0", "aof-use-rdb-preamble": "yes", "protected-mode": "yes",
                "dir": os.path.realpath(d)}
        for k, v in want.items():
            eq(cli("CONFIG", "GET", k).splitlines()[1], v, k)
        assert os.path.isdir(os.path.join(d, "appendonlydir")), "AOF directory"
        # noeviction: past maxmemory, writes are refused and nothing is evicted.
        eq(cli("SET", "job:1", "x" * 1000), "OK", "set")
        eq(cli("CONFIG", "SET", "maxmemory", "1"), "OK", "tiny maxmemory")
        refused = cli("SET", "job:2", "y")
        assert refused.startswith("OOM"), f"a write past maxmemory answered {refused!r}"
        eq(cli("EXISTS", "job:1"), "1", "the old key is still there")
        eq(cli("CONFIG", "SET", "maxmemory", "0"), "OK", "lift the limit")
        eq(cli("SET", "job:2", "y"), "OK", "writes work again")
    finally:
        p.terminate()
        p.wait(30)


# ---- systemd units ----------------------------------------------------------------------

def unit_keys(path):
    keys = {}
    for line in open(path):
        line = line.strip()
        if "=" in line and not line.startswith(("#", ";", "[")):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    return keys


@suite.test
def test_systemd_units_verify_and_stop_after_the_grace(ctx):
    sd = os.path.join(DEPLOY, "systemd")
    units = sorted(f for f in os.listdir(sd) if f.endswith((".service", ".target")))
    eq(units, ["spool-api.service", "spool-pdf@.service", "spool-video@.service", "spool.target"],
       "units")
    env = dict(line.strip().split("=", 1) for line in open(os.path.join(sd, "spool.env"))
               if "=" in line and not line.startswith("#"))
    grace = seconds(env["SPOOL_GRACE"])
    for u in units:
        if not u.endswith(".service"):
            continue
        k = unit_keys(os.path.join(sd, u))
        kind = u.split("@")[0].split(".")[0].replace("spool-", "")
        eq(k["ExecStart"], [f"/usr/local/bin/spool-{kind}"], f"{u} ExecStart")
        eq(k["KillSignal"], ["SIGTERM"], f"{u} KillSignal")
        eq(k["Restart"], ["on-failure"], f"{u} Restart")
        eq(k["User"], ["spool"], f"{u} User")
        eq(k["EnvironmentFile"], ["/etc/spool/spool.env"], f"{u} EnvironmentFile")
        for hard in ("NoNewPrivileges", "ProtectSystem", "PrivateTmp", "ProtectHome"):
            assert hard in k, f"{u} lacks {hard}"
        eq(k["ProtectSystem"], ["strict"], f"{u} ProtectSystem")
        eq(k["StateDirectory"], ["spool"], f"{u} StateDirectory")
        limit = seconds(k["TimeoutStopSec"][0])
        bound = grace if kind != "api" else seconds(env["SPOOL_SHUTDOWN_GRACE"])
        assert limit > bound, f"{u}: TimeoutStopSec {limit} <= grace {bound}"
        if "@" in u:
            assert any("%i" in v for v in k["Environment"]), f"{u}: instance not in the worker id"
    assert env["SPOOL_DATA_DIR"].startswith("/var/lib/spool/"), "data under StateDirectory"

    assert shutil.which("systemd-analyze"), "systemd-analyze is missing (make deps installs systemd)"
    # verify wants ExecStart to exist: point it at /usr/bin/true in a copy. Warnings
    # (an unknown key, a bad value) are failures too.
    d = tempfile.mkdtemp(prefix="spool-ops-units-", dir=suite.tmp)
    for u in units:
        text = open(os.path.join(sd, u)).read()
        text = re.sub(r"/usr/local/bin/spool-[a-z]+", "/usr/bin/true", text)
        with open(os.path.join(d, u), "w") as f:
            f.write(text)
    rc, out, err = run(["systemd-analyze", "verify", *units], cwd=d)
    eq((rc, out + err), (0, ""), "systemd-analyze verify")


# ---- Kubernetes ---------------------------------------------------------------------------

@suite.test
def test_k8s_manifests_parse_and_fit_together(ctx):
    k8s = os.path.join(DEPLOY, "k8s")
    kust = yaml_docs(os.path.join(DEPLOY, "kustomization.yaml"))[0]
    for r in kust["resources"]:
        assert os.path.isfile(os.path.join(DEPLOY, r)), f"kustomization lists a missing {r}"
    for g in kust["configMapGenerator"]:
        for f in g["files"]:
            assert os.path.isfile(os.path.join(DEPLOY, f)), f"generator file {f}"
    listed = {os.path.basename(r) for r in kust["resources"]}
    objs = {}
    for f in sorted(os.listdir(k8s)):
        if not f.endswith(".yaml"):
            continue
        for d in yaml_docs(os.path.join(k8s, f)):
            assert "kind" in d and "metadata" in d, f"{f}: not a Kubernetes object"
            objs[(d["kind"], d["metadata"]["name"])] = (f, d)
        if f != "keda.yaml":
            assert f in listed, f"{f} is not in kustomization.yaml"
    for kind, name in (("Deployment", "spool-api"), ("Deployment", "spool-video"),
                       ("Deployment", "spool-pdf"), ("Service", "spool-api"),
                       ("StatefulSet", "spool-redis"), ("Service", "spool-redis"),
                       ("ConfigMap", "spool-config"), ("PersistentVolumeClaim", "spool-blobs")):
        assert (kind, name) in objs, f"missing {kind}/{name}"

    def pod(name):
        return objs[("Deployment", name)][1]["spec"]["template"]

    # Every pod: a grace period, non-root, resources, the blob volume where it belongs.
    for (kind, name), (f, d) in objs.items():
        if kind not in ("Deployment", "StatefulSet"):
            continue
        spec = d["spec"]["template"]["spec"]
        eq(d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items(),
           True, f"{name}: selector matches the pod labels")
        assert spec.get("terminationGracePeriodSeconds", 0) > 0, f"{name}: terminationGracePeriodSeconds"
        assert spec["securityContext"]["runAsNonRoot"] is True, f"{name}: runAsNonRoot"
        for c in spec["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], f"{name}: resources"
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, f"{name}"
        if name.startswith("spool-") and name != "spool-redis":
            c = spec["containers"][0]
            eq([e["configMapRef"]["name"] for e in c["envFrom"]], ["spool-config"], f"{name} envFrom")
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            vol = {v["name"]: v for v in spec["volumes"]}
            cfg = objs[("ConfigMap", "spool-config")][1]["data"]
            eq(vol[mounts[cfg["SPOOL_DATA_DIR"]]]["persistentVolumeClaim"]["claimName"], "spool-blobs",
               f"{name}: SPOOL_DATA_DIR on the shared volume")
            eq(spec["securityContext"]["runAsUser"], 10001, f"{name}: the image's user")

    eq(objs[("PersistentVolumeClaim", "spool-blobs")][1]["spec"]["accessModes"], ["ReadWriteMany"],
       "blobs shared across nodes")
    api = pod("spool-api")["spec"]
    c = api["containers"][0]
    eq(c["command"], ["spool-api"], "api command")
    port = {p["name"]: p["containerPort"] for p in c["ports"]}
    env = {e["name"]: e for e in c["env"]}
    eq(env["SPOOL_LISTEN"]["value"], f"0.0.0.0:{port['http']}", "the API listens on its port")
    eq(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"}, "readiness")
    eq(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"}, "liveness")
    assert api["terminationGracePeriodSeconds"] > seconds(env["SPOOL_SHUTDOWN_GRACE"]["value"]) + 5
    svc = objs[("Service", "spool-api")][1]["spec"]
    eq(svc["selector"].items() <= pod("spool-api")["metadata"]["labels"].items(), True, "Service selector")
    eq(svc["ports"][0]["targetPort"], "http", "Service target port")

    redis_url = objs[("ConfigMap", "spool-config")][1]["data"]["SPOOL_REDIS_URL"]
    eq(redis_url, "redis://spool-redis:6379/0", "SPOOL_REDIS_URL names the Redis Service")
    redis = objs[("StatefulSet", "spool-redis")][1]["spec"]["template"]["spec"]
    rc = redis["containers"][0]
    assert rc["args"][0] == "/etc/redis/redis.conf" and "--maxmemory" in rc["args"], rc["args"]
    eq([v["configMap"]["name"] for v in redis["volumes"] if "configMap" in v], ["spool-redis"],
       "redis.conf from the generated ConfigMap")
    eq([g["name"] for g in kust["configMapGenerator"]], ["spool-redis"], "generator")

    keda = {d["metadata"]["name"]: d for (k, _), (f, d) in objs.items() if k == "ScaledObject"}
    prefix = objs[("ConfigMap", "spool-config")][1]["data"]["SPOOL_KEY_PREFIX"]
    for kind in ("video", "pdf"):
        w = pod(f"spool-{kind}")["spec"]
        c = w["containers"][0]
        eq(c["command"], [f"spool-{kind}"], f"{kind} command")
        env = {e["name"]: e for e in c["env"]}
        queue = env["SPOOL_QUEUES"]["value"]
        grace = seconds(env["SPOOL_GRACE"]["value"])
        assert w["terminationGracePeriodSeconds"] > grace, f"spool-{kind}: grace period too short"
        if kind == "video":
            eq(env["SPOOL_VIDEO_THREADS"]["value"], str(c["resources"]["limits"]["cpu"]),
               "codec threads match the CPU limit")
        so = keda[f"spool-{kind}"]
        eq(so["spec"]["scaleTargetRef"]["name"], f"spool-{kind}", "KEDA target")
        eq(so["spec"]["triggers"][0]["metadata"]["listName"], f"{prefix}q:{queue}:ready",
           "KEDA reads the queue's ready list")


@suite.test
def test_keda_list_name_is_the_queue_redis_really_uses(ctx):
    """The ready list KEDA measures is the one the queue fills (checked with qtool)."""
    from harness import Redis
    qtool = os.path.join(os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests")),
                         "qtool")
    if not os.access(qtool, os.X_OK):
        raise Skip("qtool not built")
    r = Redis()
    try:
        for _ in range(3):
            rc, out, err = run([qtool, r.url, "spool:", "enqueue", "video", "video.transcode", "{}", "3"])
            eq(rc, 0, f"qtool enqueue: {err}")
        eq(r.cli("TYPE", "spool:q:video:ready"), "list", "type")
        eq(r.cli("LLEN", "spool:q:video:ready"), "3", "LLEN counts the waiting jobs")
    finally:
        r.destroy()


def k8s_render(kustomization_text):
    """kubectl kustomize of a kustomization written to a temporary directory (paths in
    it relative to the checkout's root: ROOT/...), as a list of objects; None when no
    kubectl with kustomize is on PATH (it is not a deps/debian.txt package: Debian 12's
    kubernetes-client is 1.20, whose kustomize predates components)."""
    kubectl = shutil.which("kubectl")
    if not kubectl or run([kubectl, "kustomize", "--help"], timeout=30)[0] != 0:
        return None
    d = tempfile.mkdtemp(prefix="spool-ops-kustomize-", dir=suite.tmp)
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        f.write(kustomization_text.replace("ROOT", os.path.relpath(ROOT, d)))
    rc, out, err = run([kubectl, "kustomize", d], timeout=60)
    eq(rc, 0, f"kubectl kustomize: {err}")
    return yaml_docs(out, is_text=True)


@suite.test
def test_k8s_s3_component_drops_the_shared_volume(ctx):
    comp = os.path.join(DEPLOY, "k8s", "s3")
    kust = yaml_docs(os.path.join(comp, "kustomization.yaml"))[0]
    eq(kust["kind"], "Component", "deploy/k8s/s3 is a kustomize component")
    base = {}
    for f in sorted(os.listdir(os.path.join(DEPLOY, "k8s"))):
        if f.endswith(".yaml"):
            for d in yaml_docs(os.path.join(DEPLOY, "k8s", f)):
                base[(d["kind"], d["metadata"]["name"])] = d
    patched = {}
    for p in kust["patches"]:
        for d in yaml_docs(os.path.join(comp, p["path"])):
            key = (d["kind"], d["metadata"]["name"])
            assert key in base, f"{p['path']} patches {key}, which deploy/k8s does not have"
            eq(d["metadata"].get("namespace"), base[key]["metadata"]["namespace"], f"{key} namespace")
            patched[key] = d
    eq(patched[("PersistentVolumeClaim", "spool-blobs")].get("$patch"), "delete",
       "the ReadWriteMany claim is left out")
    cfg = patched[("ConfigMap", "spool-config")]["data"]
    assert cfg["SPOOL_BLOB_URL"].startswith("s3://"), cfg["SPOOL_BLOB_URL"]
    assert "SPOOL_DATA_DIR" in cfg and cfg["SPOOL_DATA_DIR"] is None, "SPOOL_DATA_DIR removed"
    for k in ("SPOOL_S3_ENDPOINT", "SPOOL_S3_REGION", "SPOOL_S3_PATH_STYLE", "SPOOL_SCRATCH_DIR"):
        assert k in cfg, f"{k} missing from the component's spool-config"
    assert not any(k.startswith("AWS_") for k in cfg), "credentials belong in the Secret"
    for name in ("spool-api", "spool-video", "spool-pdf"):
        pod = patched[("Deployment", name)]["spec"]["template"]["spec"]
        bpod = base[("Deployment", name)]["spec"]["template"]["spec"]
        eq([c["name"] for c in pod["containers"]], [c["name"] for c in bpod["containers"]],
           f"{name}: patched container names")
        c = pod["containers"][0]
        eq(c["envFrom"], [{"configMapRef": {"name": "spool-config"}}, {"secretRef": {"name": "spool-s3"}}],
           f"{name}: settings and credentials")
        gone = [v["name"] for v in pod["volumes"] if v.get("$patch") == "delete"]
        eq(gone, [v["name"] for v in bpod["volumes"] if "persistentVolumeClaim" in v],
           f"{name}: the claim's volume is deleted")
        bmounts = {m["name"]: m["mountPath"] for m in bpod["containers"][0]["volumeMounts"]}
        eq([m["mountPath"] for m in c["volumeMounts"] if m.get("$patch") == "delete"],
           [bmounts[n] for n in gone], f"{name}: its mount is deleted")
        # Scratch goes to a volume the pod keeps (readOnlyRootFilesystem): its emptyDir.
        empty = {bmounts[v["name"]] for v in bpod["volumes"] if "emptyDir" in v}
        assert any(cfg["SPOOL_SCRATCH_DIR"].startswith(m + "/") for m in empty), \
            f"{name}: SPOOL_SCRATCH_DIR {cfg['SPOOL_SCRATCH_DIR']} is on none of {sorted(empty)}"
    text = open(os.path.join(DEPLOY, "kustomization.yaml")).read()
    assert re.search(r"^# components:\n#   - k8s/s3$", text, re.M), \
        "deploy/kustomization.yaml shows how to turn the component on"

    # Rendered, where kubectl can: the base has the shared claim, base + component none.
    objs = k8s_render("resources: [ROOT/deploy]\ncomponents: [ROOT/deploy/k8s/s3]\n")
    if objs is None:
        print("# kubectl with kustomize is not on PATH: the rendered check is left out")
        return
    plain = k8s_render("resources: [ROOT/deploy]\n")
    assert any(o["kind"] == "PersistentVolumeClaim" for o in plain), "the base has its claim"
    eq([o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"], [], "claims")
    eq(len(objs), len(plain) - 1, "only the claim is left out")
    for o in objs:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "spool-config":
            assert "SPOOL_DATA_DIR" not in o["data"] and o["data"]["SPOOL_BLOB_URL"].startswith("s3://")
        if o["kind"] != "Deployment":
            continue
        spec = o["spec"]["template"]["spec"]
        eq([v for v in spec["volumes"] if "persistentVolumeClaim" in v], [], f"{o['metadata']['name']} claims")
        c = spec["containers"][0]
        assert {"secretRef": {"name": "spool-s3"}} in c["envFrom"], c["envFrom"]
        assert all(m["mountPath"] != "/var/lib/spool/data" for m in c["volumeMounts"]), c["volumeMounts"]
        assert c["resources"]["requests"].get("cpu"), "the base's requests are kept"
    print(f"# rendered with {shutil.which('kubectl')}: {len(objs)} objects, no claim")


# ---- scripts/run.sh refusals ----------------------------------------------------------------

def run_sh(env, timeout=30):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("SPOOL_", "MAKE"))}
    e.update(env)
    return run(["bash", os.path.join(ROOT, "scripts", "run.sh")], env=e, timeout=timeout,
               stdin=subprocess.DEVNULL)


@suite.test
def test_run_sh_says_what_is_missing_or_wrong(ctx):
    empty = tempfile.mkdtemp(prefix="spool-ops-bin-", dir=suite.tmp)
    var = os.path.join(suite.tmp, "var-refusals")
    rc, out, err = run_sh({"BIN_DIR": empty, "VAR_DIR": var})
    eq(rc, 1, "exit")
    for b, src in (("spool-api", "api/"), ("spool-video", "workers/video/"), ("spool-pdf", "workers/pdf/")):
        assert f"missing: {empty}/{b} (from {src})" in err, err
    assert "build them with 'make'" in err, err
    assert not os.path.exists(var), "nothing created before the checks pass"
    rc, out, err = run_sh({"BIN_DIR": empty, "VAR_DIR": var, "VIDEO_WORKERS": "0", "PDF_WORKERS": "0"})
    eq(rc, 1, "exit")
    assert "spool-api" in err and "spool-video" not in err, err

    for env, says in (({"VIDEO_WORKERS": "many"}, "VIDEO_WORKERS must be a number from 0 to 64"),
                      ({"API_PORT": "70000"}, "API_PORT must be a port number"),
                      ({"API_PORT": "7000", "REDIS_PORT": "7000"}, "must differ")):
        rc, out, err = run_sh(dict(env, BIN_DIR=empty, VAR_DIR=var))
        eq(rc, 1, f"exit for {env}")
        assert says in err, f"{env}: {err}"

    # A port already in use is named before anything starts.
    stubs = tempfile.mkdtemp(prefix="spool-ops-stubs-", dir=suite.tmp)
    for b in ("spool-api", "spool-video", "spool-pdf"):
        path = os.path.join(stubs, b)
        with open(path, "w") as f:
            f.write("#!/bin/sh\nexit 99\n")
        os.chmod(path, 0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        rc, out, err = run_sh({"BIN_DIR": stubs, "VAR_DIR": var, "REDIS_PORT": str(busy)})
        eq(rc, 1, "exit")
        assert f"port {busy} is in use: choose another with REDIS_PORT=" in err, err
        rc, out, err = run_sh({"BIN_DIR": stubs, "VAR_DIR": var, "API_PORT": str(busy),
                               "REDIS_PORT": str(free_port())})
        eq(rc, 1, "exit")
        assert f"port {busy} is in use: choose another with API_PORT=" in err, err


@suite.test
def test_run_sh_stops_everything_when_a_process_dies(ctx):
    """The API failing at start (its stub exits) brings Redis down too, exit 1."""
    stubs = tempfile.mkdtemp(prefix="spool-ops-stubs-", dir=suite.tmp)
    for b in ("spool-api", "spool-video", "spool-pdf"):
        path = os.path.join(stubs, b)
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho 'cannot start: pretend failure' >&2\nexit 3\n")
        os.chmod(path, 0o755)
    var = os.path.join(suite.tmp, "var-dies")
    rport = free_port()
    rc, out, err = run_sh({"BIN_DIR": stubs, "VAR_DIR": var, "REDIS_PORT": str(rport),
                           "API_PORT": str(free_port())}, timeout=60)
    eq(rc, 1, f"exit\n{out}\n{err}")
    assert re.search(r"^\[api\] +cannot start: pretend failure$", out, re.M), out
    assert "spool-api did not start" in out, out
    assert out.index("[run] stopping Redis") < out.rindex("[run] stopped"), out
    assert re.search(r"^\[redis\] .*ready to exit", out, re.M | re.I), out
    with socket.socket() as s:
        eq(s.connect_ex(("127.0.0.1", rport)), 111, "Redis is gone (connection refused)")


# ---- make run and make demo end to end --------------------------------------------------------

def descendants(root):
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        for k in kids.get(p, []):
            out.append(k)
            todo.append(k)
    return out


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class MakeRun:
    """`make run` in its own session, as a terminal runs it; Ctrl-C = SIGINT to the group."""

    def __init__(self, var, api_port, redis_port, extra=None, env=None):
        self.log = os.path.join(suite.tmp, f"make-run-{time.monotonic_ns()}.log")
        e = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
        e.pop("SPOOL_DATA_DIR", None)
        e.update(env or {})
        args = ["make", "-C", ROOT, "--no-print-directory", "run", f"API_PORT={api_port}",
                f"REDIS_PORT={redis_port}", f"VAR_DIR={var}", *(extra or [])]
        if SANITIZED:
            args.append("SAN=1")
        self.url = f"http://127.0.0.1:{api_port}"
        self.proc = subprocess.Popen(args, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=e, start_new_session=True)
        self.pids = set()

    def output(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_up(self, timeout=180):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"make run exited with {self.proc.returncode}:\n{self.output()}")
            return "[run] spool is up" in self.output()
        wait_until(up, timeout, 0.2, what="make run to come up")
        self.pids |= set(descendants(self.proc.pid))

    def interrupt(self, timeout=90):
        self.pids |= set(descendants(self.proc.pid))
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"make run did not stop within {timeout}s:\n{self.output()[-3000:]}")

    def kill(self):
        """Clean-up after a failure: the children run in their own sessions."""
        for p in set(descendants(self.proc.pid)) | self.pids:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def api_get(url, path):
    with urllib.request.urlopen(url + path, timeout=10) as r:
        return r.status, json.loads(r.read())


def ctl(url, *args, timeout=120):
    p = subprocess.run([bin_path("spoolctl"), "--server", url, *map(str, args)], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def need_all():
    missing = [b for b in SPOOL_BINS if not bin_path(b)]
    if missing:
        raise Skip(f"{', '.join(missing)} not built")


@suite.test
def test_make_run_tags_logs_and_ctrl_c_stops_workers_then_api_then_redis(ctx):
    need_all()
    var = os.path.join(suite.tmp, "var-run")
    api_port, redis_port = free_port(), free_port()
    # A short grace, so the running job is given back rather than finished.
    env = {"SPOOL_GRACE": "1s", "SPOOL_RENEW_INTERVAL": "200ms"}
    mr = MakeRun(var, api_port, redis_port, ["VIDEO_WORKERS=2", "PDF_WORKERS=2"], env)
    try:
        mr.wait_up()
        eq(api_get(mr.url, "/healthz")[0], 200, "healthz")
        # The two video and two PDF workers, and the API's webhook deliverer.
        wait_until(lambda: sorted(w["kind"] for w in api_get(mr.url, "/v1/queues")[1]["workers"])
                   == ["pdf", "pdf", "video", "video", "webhook"], 30,
                   what="four workers and the webhook deliverer in the registry")
        conf = {}
        for k in ("appendonly", "maxmemory-policy", "dir", "bind"):
            out = subprocess.run(["redis-cli", "-p", str(redis_port), "CONFIG", "GET", k],
                                 stdout=subprocess.PIPE, timeout=10).stdout.decode().split("\n")
            conf[k] = out[1]
        eq(conf, {"appendonly": "yes", "maxmemory-policy": "noeviction",
                  "dir": os.path.join(var, "redis"), "bind": "127.0.0.1"}, "the private Redis")

        clip = make_clip(os.path.join(suite.tmp, "long.mp4"), seconds=12, size="1280x720")
        jid = ctl(mr.url, "-q", "submit-video", clip, "--preset", "mp4-720p")[1].strip()
        wait_until(lambda: (lambda j: j["state"] == "running" and j["progress"] > 0)(
            api_get(mr.url, f"/v1/jobs/{jid}")[1]), 60, 0.1, what="the job to be running")
        pids = set(descendants(mr.proc.pid))
        t0 = time.monotonic()
        mr.interrupt()
        took = time.monotonic() - t0
        out = mr.output()
    except BaseException:
        mr.kill()
        raise
    assert took < 30, f"stopping took {took:.1f}s"
    assert "Sanitizer" not in out, "a sanitizer report in the processes' output:\n" + out[-6000:]
    lines = out.splitlines()
    untagged = [ln for ln in lines if not re.match(r"^(\[[a-z0-9-]+\]|make(\[\d+\])?: |deps: )", ln)]
    eq(untagged, [], "every line is tagged with its process")
    for tag in ("[redis]", "[api]", "[video-1]", "[video-2]", "[pdf-1]", "[pdf-2]"):
        assert any(ln.startswith(tag) for ln in lines), f"no {tag} lines"

    def first(pattern, after=0):
        for i, ln in enumerate(lines[after:], after):
            if re.search(pattern, ln):
                return i
        raise AssertionError(f"no line matches {pattern!r}:\n" + out[-4000:])
    w = first(r"^\[run\] stopping the workers")
    gave_back = first(r"^\[video-\d\] .*" + jid, w)
    stopped = [first(rf"^\[{n}\] .*stopped", w) for n in ("video-1", "video-2", "pdf-1", "pdf-2")]
    a = first(r"^\[run\] stopping the API", w)
    a_end = first(r"^\[api\] .*stopped", a)
    r = first(r"^\[run\] stopping Redis", a_end)
    r_end = first(r"^\[redis\] .*ready to exit", r)
    end = first(r"^\[run\] stopped$", r_end)
    assert w < gave_back < a and max(stopped) < a < a_end < r < r_end < end, \
        "\n".join(lines[w:end + 1])
    left = [p for p in pids | mr.pids if alive(p)]
    eq(left, [], "processes left running")
    for port in (api_port, redis_port):
        with socket.socket() as s:
            eq(s.connect_ex(("127.0.0.1", port)), 111, f"port {port} closed")
    assert os.path.isdir(os.path.join(var, "redis", "appendonlydir")), "AOF under VAR_DIR"
    ctx["restart"] = (var, jid)


@suite.test
def test_restart_from_the_same_var_finishes_the_job_and_make_demo_works(ctx):
    need_all()
    if "restart" not in ctx:
        raise AssertionError("needs the previous test's stopped run")
    var, jid = ctx["restart"]
    api_port, redis_port = free_port(), free_port()
    mr = MakeRun(var, api_port, redis_port)
    try:
        mr.wait_up()
        # The job given back at Ctrl-C is still in Redis (AOF) and runs to the end.
        rc, out, err = ctl(mr.url, "--json", "wait", jid, "--timeout", "240", timeout=300)
        eq(rc, 0, f"wait: {err}")
        job = json.loads(out.splitlines()[-1])
        eq(job["state"], "succeeded", "state")
        eq(job["attempts"], 1, "the given-back attempt was not counted")

        e = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
        args = ["make", "-C", ROOT, "--no-print-directory", "demo", f"API_PORT={api_port}",
                f"VAR_DIR={var}"] + (["SAN=1"] if SANITIZED else [])
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e,
                           timeout=600)
        demo = p.stdout.decode(errors="replace")
        eq(p.returncode, 0, f"make demo:\n{demo}")
        ids = re.findall(r"^\[demo\] submitted the (?:clip|dataset): job ([0-9a-z]{36})$", demo, re.M)
        eq(len(ids), 2, f"two jobs submitted:\n{demo}")
        assert re.search(rf"^{ids[0]} running \d+%$", demo, re.M), "live progress lines"
        for jid2, name in ((ids[0], "video.mp4"), (ids[0], "poster.jpg"), (ids[1], "export.pdf")):
            assert f"{mr.url}/v1/jobs/{jid2}/outputs/{name}" in demo, f"URL of {name}"
        # The list at the end: one URL per output, each of which downloads.
        done = demo[demo.index("[demo] done. The outputs:"):]
        urls = re.findall(r"^  (http://\S+)  \(on the server: (\S+)\)$", done, re.M)
        eq(sorted(u.rsplit("/", 1)[1] for u, _ in urls), ["export.pdf", "poster.jpg", "video.mp4"],
           f"the output URLs printed:\n{done}")
        for url, path in urls:
            with urllib.request.urlopen(url, timeout=30) as r:
                eq((r.status, len(r.read())), (200, os.path.getsize(path)), f"GET {url}")
        out_dir = os.path.join(var, "demo", "out")
        for name in ("video.mp4", "poster.jpg", "export.pdf"):
            assert f"  {os.path.join(out_dir, name)}" in demo, f"path of {name}"
        v = [s for s in ffprobe(os.path.join(out_dir, "video.mp4"))["streams"] if s["codec_type"] == "video"][0]
        eq((v["width"], v["height"]), (1280, 720), "demo video")
        info = subprocess.run(["pdfinfo", os.path.join(out_dir, "export.pdf")], stdout=subprocess.PIPE,
                              check=True).stdout.decode()
        assert re.search(r"^Title:\s+Demo: 5,000 orders$", info, re.M), info
        with open(os.path.join(var, "demo", "orders.csv")) as f:
            eq(sum(1 for _ in f), 5001, "5,000 rows and a header")
        st = json.loads(ctl(mr.url, "--json", "status", ids[1])[1])
        eq(st["metadata"]["rows"], 5000, "rows exported")
        mr.interrupt()
    except BaseException:
        mr.kill()
        raise
    out = mr.output()
    assert "[run] stopped" in out, out[-3000:]
    assert "Sanitizer" not in out, "a sanitizer report in the processes' output:\n" + out[-6000:]


def setup():
    return {}


if __name__ == "__main__":
    sys.exit(suite.run(setup))
