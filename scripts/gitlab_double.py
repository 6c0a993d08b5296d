#!/usr/bin/env python3
"""A GitLab double on loopback for the end-to-end tests: GitLab's REST API (v4) subset that
glrunner calls, with GitLab's documented behaviour where glrunner depends on it, and runners
that play themselves.

    python3 scripts/gitlab_double.py PORT [--kubeconfig KC] [--token TOKEN]

Why it exists: no GitLab runs here (see TESTING.md), and the in-memory GitLab only speaks the
Rust trait. This serves the same behaviour over HTTP so the real client, the real flow and the
real binaries meet it:

- every call needs `PRIVATE-TOKEN: TOKEN` or `Authorization: Bearer TOKEN` (401 otherwise);
- list endpoints return GitLab's smaller entities (`GET /projects/:id/runners` has no
  `tag_list`; `GET /runners/:id` has it, with `status`, `online`, `contacted_at`);
- a commit starts a push pipeline unless its message has `[skip ci]`/`[ci skip]` or the CI
  file's `workflow: rules` only admit `$CI_PIPELINE_SOURCE == "api"`;
- pipeline jobs are paginated (`page`, `per_page` ≤ 100, `x-next-page`, `x-total`), newest first;
  a project's jobs (`GET /projects/:id/jobs`) too, but without `x-total` (GitLab does not count them);
- a runner is `online` only once its manager exists: with `--kubeconfig`, once a Secret in the
  cluster holds its token under `runner-token` (the chart's layout), which is how glrunner
  deploys it (without `--kubeconfig` no runner ever contacts); jobs run only on online runners
  whose tags match;
- `GET /version`, `GET /personal_access_tokens/self` (scopes), `GET /{projects,groups}/:id/members/all/:user_id`
  (the token user's role, 404 for others), a namespace's `plan` and a project's
  `ci_pipeline_variables_minimum_override_role` answer like GitLab, set through `POST /double/config`
  (`version`, `scopes`, `access_level`, `is_admin`, `admin_mode`, `plan`, `refuse_variables`,
  `max_jobs_per_pipeline`, `max_active_jobs`);
- every call checks the token's scopes as GitLab's API guard does: any scope registered for the
  route passes (`api` everywhere, `read_api` on GET/HEAD, `read_user` on `GET /user` and
  `/version`, `create_runner` on `POST /user/runners`, any scope on
  `GET /personal_access_tokens/self`), else 403 `insufficient_scope` naming every registered
  scope (sources: crates/gitlab-client/src/permissions.rs). `POST /user/runners` is 404 before
  15.10 and `403 Forbidden - Insufficient permissions` below Maintainer (40) unless the user is an
  administrator acting as one (Admin Mode off, or the token has `admin_mode`);
- a namespace's `plan` is shown only to those who can administer it (EE `can_admin_namespace`:
  a group's Owners, the user's own namespace, administrators); `plan: "default"` is self-managed EE;
- pipeline creation answers GitLab's refusals: `Pipeline filtered out by workflow rules.`, the
  jobs-per-pipeline limit (`ci_pipeline_size`, with its help link) and the jobs-in-active-pipelines
  limit (`ci_active_jobs`: alive pipelines' jobs plus the new ones `>=` the limit); sources in
  crates/gitlab-client/src/limits.rs;
- a runner keeps its last `contacted_at` when its manager is gone (GitLab never clears it; it is
  `online` for 2 hours after it, then `offline`); `POST /double/runners/ID` with
  `{"contacted_ago": SECONDS}` sets it (a reused runner whose manager is gone);
- faults: `POST /double/faults` with `{"METHOD /path-regex": [status, count, skip]}` lets the
  next `skip` matching calls through (optional), then answers `count` of them with `status`
  (429 carries `Retry-After: 1`). A fourth element `"after"` makes GitLab act first and then
  answers `status` (a proxy's 502 after GitLab created the runner, commit or pipeline: the
  answer is lost, the effect is not). `"slow", ANSWER_AFTER, EFFECT_AFTER` (seconds) is the slow
  effect: GitLab carries the call out EFFECT_AFTER seconds after it arrived, whether the client
  still waits or not (Puma goes on with a request whose client left, until GitLab's request
  timeout: doc/administration/operations/puma.md), and `status` is answered after ANSWER_AFTER.

- a job's log (`GET /projects/:id/jobs/:job_id/trace`, `text/plain`, empty until a runner writes
  one: `build.trace.raw || ''`, lib/api/ci/jobs.rb): a job that runs gets the log its runner would
  write — the executor line with its image, the image's real `/etc/os-release` where the load
  test's script prints it (files in OS_RELEASE, with their sources), and with a `cache:` the
  runner's restore/save lines (messages from gitlab-runner's source, cited in
  crates/gitlab-client/src/trace.rs). `POST /double/config` with `{"wrong_image_job": N}` runs the
  N-th job to start with another image than its own (the image proof's fault), and
  `{"shared_cache": false}` answers every restore "No URL provided";
- `POST /double/runners/ID` with `{"manager": true}` says the runner's manager runs elsewhere (a
  test without a cluster): it contacts and takes jobs as one found through `--kubeconfig` does.

`GET /double/state` returns counters for the tests (projects, runners, pipelines by source,
jobs by status, requests). Nothing here is a secret store: tokens are random test values.
"""
import base64
import json
import re
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml  # PyYAML: installed with moto[server]

LOCK = threading.RLock()
STATE = {
    "projects": {},  # id -> project
    "runners": {},  # id -> runner (with token, tags, contacted_at)
    "files": {},  # (project id, ref) -> {path: content}
    "branches": {},  # project id -> set of branch names
    "heads": {},  # (project id, branch) -> (head commit sha, title)
    "pipelines": {},  # id -> pipeline
    "jobs": {},  # id -> job
    "namespaces": {},  # id -> full path
    "faults": {},  # "METHOD regex" -> [status, remaining]
    "requests": 0,
    "refuse_variables": False,
    "max_jobs_per_pipeline": 0,
    "version": "18.9.0",
    "scopes": ["api", "create_runner"],
    "access_level": 50,  # the token user's role everywhere (Owner)
    "is_admin": False,  # an instance administrator
    "admin_mode": False,  # the instance's Admin Mode
    "plan": None,  # a namespace's plan ("free", ... on GitLab.com; "default" on self-managed EE; CE none)
    "max_active_jobs": 0,  # ci_active_jobs (0: no limit)
    "wrong_image_job": 0,  # the N-th job to start runs another image (0: none)
    "shared_cache": True,  # restores find what earlier jobs saved
    "managers": set(),  # runner ids whose manager runs without a cluster (POST /double/runners/ID)
    "cache_objects": {},  # cache key -> True once a job saved it
    "jobs_started": 0,
}

# /etc/os-release of the default image matrix (crates/sandbox/src/images.rs has the same files):
# alpine:3.20 (alpine-baselayout, aports main/alpine-base/APKBUILD), debian:bookworm-slim (Debian
# base-files 12.4+deb12u*, etc/os-release), ubuntu:24.04 (Ubuntu base-files 13ubuntu10.1).
OS_RELEASE = {
    "alpine": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n'
              'HOME_URL="https://alpinelinux.org/"\nBUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"\n',
    "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\n'
              'VERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL="https://www.debian.org/"\n',
    "ubuntu": 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nNAME="Ubuntu"\nVERSION_ID="24.04"\nVERSION="24.04.1 LTS (Noble Numbat)"\n'
              'VERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\nUBUNTU_CODENAME=noble\n',
}
OS_RELEASE_BEGIN = "glrunner-os-release-begin"  # crates/gitlab-client/src/trace.rs
OS_RELEASE_END = "glrunner-os-release-end"


def os_release_of(image):
    """The os-release file of an image the double knows (by repository name and tag), else None."""
    name = (image or "").rsplit("/", 1)[-1]
    repo, _, tag = name.partition(":")
    if repo == "alpine" and tag.startswith("3.20") or repo == "bash":
        return OS_RELEASE["alpine"]
    if repo == "debian" and tag in ("bookworm", "bookworm-slim", "12", "12-slim"):
        return OS_RELEASE["debian"]
    if repo == "ubuntu" and tag in ("24.04", "noble"):
        return OS_RELEASE["ubuntu"]
    return None


def other_image(image):
    """The image the wrong-image fault runs instead: another distro of the default matrix."""
    if os_release_of(image) == OS_RELEASE["alpine"]:
        return "public.ecr.aws/docker/library/debian:bookworm-slim"
    return "public.ecr.aws/docker/library/alpine:3.20"


def section(edge, name, t):
    # `section_start:%v:%s\r` + ANSI clear (gitlab-runner helpers/build_section.go line 19)
    return f"section_{edge}:{int(t)}:{name}\r\x1b[0K"


def job_log(job, runner, image, t):
    """The log a Kubernetes-executor runner writes for a load-test job (sources: the Rust
    sandbox's `images::job_log`, which cites each line in gitlab-runner's source)."""
    out = ["Running with gitlab-runner (gitlab-double)", f"  on {runner['description']}",
           section("start", "prepare_executor", t), 'Preparing the "kubernetes" executor',
           f"Using Kubernetes executor with image {image} ...", section("end", "prepare_executor", t)]
    cache = job.get("cache")
    if cache:
        out += [section("start", "restore_cache", t), "Restoring cache", f"Checking cache for {cache['key']}..."]
        if not STATE["shared_cache"]:
            out += ["No URL provided, cache will not be downloaded from shared cache server. "
                    "Instead a local version of cache will be extracted.", "Failed to extract cache"]
        elif cache["key"] in STATE["cache_objects"]:
            out += [f"Downloading cache from https://cache.double/project/{job['project_id']}/{cache['key']}",
                    "Successfully extracted cache"]
        else:
            out += ["WARNING: file does not exist", "Failed to extract cache"]
        out.append(section("end", "restore_cache", t))
    out += [section("start", "step_script", t), 'Executing "step_script" stage of the job script']
    for line in job.get("script") or []:
        out.append(f"$ {line}")
        if OS_RELEASE_BEGIN in line:
            os = os_release_of(image)
            out += [OS_RELEASE_BEGIN] + (os.splitlines() if os else
                                         ["cat: can't open '/etc/os-release': No such file or directory"]) + [OS_RELEASE_END]
    out.append(section("end", "step_script", t))
    if cache:
        out += [section("start", "archive_cache", t), "Saving cache for successful job", f"Creating cache {cache['key']}..."]
        if STATE["shared_cache"]:
            out.append(f"Uploading cache.zip to https://cache.double/project/{job['project_id']}/{cache['key']}")
            STATE["cache_objects"][cache["key"]] = True
        else:
            out.append("No URL provided, cache will not be uploaded to shared cache server. Cache will be stored only locally.")
        out += ["Created cache", section("end", "archive_cache", t)]
    out.append("Job succeeded")
    return "\n".join(out) + "\n"

WEB_URL = "http://gitlab.double"
# rack-oauth2's DEFAULT_DESCRIPTION[:insufficient_scope] (lib/rack/oauth2/server/resource/error.rb)
INSUFFICIENT_SCOPE = "The request requires higher privileges than provided by the access token."
# Chain::Limit::ActiveJobs::MESSAGE (lib/gitlab/ci/pipeline/chain/limit/active_jobs.rb)
ACTIVE_JOBS_EXCEEDED = "Project exceeded the allowed number of jobs in active pipelines. Retry later."
ALIVE = ("created", "waiting_for_resource", "preparing", "pending", "running")  # Ci::HasStatus::ALIVE_STATUSES
IDS = {"project": 100, "runner": 9000, "pipeline": 500, "job": 70000, "commit": 1}
TOKEN = "glpat-double-token"
KUBE = None  # (server, bearer token) when --kubeconfig is given
RUN_SECONDS = 1.0  # how long a job's script "runs"
START_SECONDS = 0.3  # pending -> running once a runner took it


def now_iso(t=None):
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def next_id(kind):
    with LOCK:
        IDS[kind] += 1
        return IDS[kind]


# --- the cluster side: which runner tokens have a Secret (their manager "exists") -------------

def load_kubeconfig(path):
    with open(path) as f:
        kc = yaml.safe_load(f)
    ctx_name = kc.get("current-context")
    ctx = next(c["context"] for c in kc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in kc["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in kc["users"] if u["name"] == ctx["user"])
    return cluster["server"].rstrip("/"), user.get("token")


def tokens_in_cluster():
    server, token = KUBE
    req = urllib.request.Request(server + "/api/v1/secrets?limit=500")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
        items = json.load(resp).get("items", [])
    found = set()
    for s in items:
        data = s.get("data") or {}
        if "runner-token" in data:
            try:
                found.add(base64.b64decode(data["runner-token"]).decode())
            except Exception:  # noqa: BLE001 - a foreign Secret with odd data is not ours
                pass
    return found


def runners_loop():
    """Marks runners online once their manager exists, and plays their jobs."""
    while True:
        time.sleep(0.2)
        live = None
        if KUBE is not None:
            try:
                live = tokens_in_cluster()
            except Exception as e:  # noqa: BLE001 - the apiserver may restart; try again
                print(f"gitlab-double: cannot list Secrets: {e}", file=sys.stderr)
        t = time.time()
        with LOCK:
            for r in STATE["runners"].values():
                # Without a cluster no manager runs anywhere: as on GitLab, nothing contacts.
                # GitLab keeps a runner's last contact when its manager is gone; only its status
                # moves on (online for ONLINE_CONTACT_TIMEOUT = 2 hours, app/models/ci/runner.rb).
                if live is not None and r["token"] in live:
                    r["contacted_at"] = t
            # Only a manager that runs takes jobs: a runner merely "online" on an old contact does not.
            for r in STATE["runners"].values():
                if r["id"] in STATE["managers"]:
                    r["contacted_at"] = t
            online = [r for r in STATE["runners"].values()
                      if ((live is not None and r["token"] in live) or r["id"] in STATE["managers"])
                      and not r["paused"]]
            for job in sorted(STATE["jobs"].values(), key=lambda j: j["id"]):
                if job["status"] == "pending":
                    # GitLab's `accepting_tags?` (app/models/ci/runner.rb,
                    # lib/gitlab/ci/matching/runner_matcher.rb): `(run_untagged || build.has_tags?)
                    # && (build.tag_list - tag_list).empty?`: an untagged job only goes to a
                    # runner created with run_untagged.
                    runner = next((r for r in online
                                   if (r["run_untagged"] or job["tag_list"])
                                   and set(job["tag_list"]) <= set(r["tags"])), None)
                    if runner is not None:
                        job["status"] = "running"
                        job["started_at"] = t + START_SECONDS
                        job["runner"] = {"id": runner["id"], "description": runner["description"]}
                        STATE["jobs_started"] += 1
                        image = job.get("image")
                        if STATE["wrong_image_job"] and STATE["jobs_started"] == STATE["wrong_image_job"]:
                            image = other_image(image)
                        job["ran_image"] = image
                elif job["status"] == "running" and t >= job["started_at"] + RUN_SECONDS:
                    job["status"] = "success"
                    job["finished_at"] = t
                    job["trace"] = job_log(job, job["runner"], job.get("ran_image"), t)
            for p in STATE["pipelines"].values():
                update_pipeline(p)


def update_pipeline(p):
    jobs = [STATE["jobs"][j] for j in p["job_ids"]]
    statuses = {j["status"] for j in jobs}
    if p["status"] in ("canceled", "failed", "success"):
        return
    if statuses & {"running"}:
        p["status"] = "running"
        p["started_at"] = p["started_at"] or time.time()
    elif jobs and statuses <= {"success"}:
        p["status"] = "success"
        p["finished_at"] = time.time()
    elif statuses & {"failed"} and not statuses & {"pending", "running"}:
        p["status"] = "failed"
        p["finished_at"] = time.time()


# --- entities as GitLab shapes them ---------------------------------------------------------

def project_json(p):
    return {k: p[k] for k in ("id", "name", "path", "path_with_namespace", "default_branch", "web_url")} | {
        "namespace": {"id": 1, "full_path": p["path_with_namespace"].rsplit("/", 1)[0]},
        "ci_pipeline_variables_minimum_override_role": "no_one_allowed" if STATE["refuse_variables"] else "developer",
    }


def version_tuple(v):
    try:
        major, minor = v.split("-")[0].split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return (0, 0)


def registered_scopes(method, path):
    """The scopes GitLab registers for a route, in its order (the endpoint class's, then API::API's:
    `scopes_registered_for_endpoint`, lib/api/api_guard.rb), each with whether its `if:` holds."""
    get = method in ("GET", "HEAD")
    if path == "personal_access_tokens/self":
        return None  # allow_access_with_scope(Gitlab::Auth.all_available_scopes)
    own = []
    if path in ("user", "version") and get:
        own = [("read_user", True)]  # API::Users, API::Version: read_user for GET/HEAD
    if path == "user/runners" and method == "POST":
        own = [("create_runner", True)]  # lib/api/user_runners.rb line 7
    return own + [("api", True), ("read_api", get)]  # lib/api/api.rb


def acting_admin():
    """An administrator acts as one with Admin Mode off or a token with `admin_mode`
    (`bypass_session_for_admin_mode?`, lib/api/api_guard.rb)."""
    return STATE["is_admin"] and (not STATE["admin_mode"] or "admin_mode" in STATE["scopes"])


def member_reply(handler, user_id):
    """GET .../members/all/:user_id: the token's user (id 1) with the configured role; 404 for others."""
    if user_id == "1" and STATE["access_level"] > 0:
        return handler.reply(200, {"id": 1, "username": "double", "access_level": STATE["access_level"]})
    return handler.reply(404, {"message": "404 Not found"})


def runner_status(r):
    if r["contacted_at"] is None:
        return "never_contacted"
    return "online" if time.time() - r["contacted_at"] < 7200 else "offline"


def runner_list_json(r):
    # GitLab's list entity: no tag_list, no contacted_at.
    return {"id": r["id"], "description": r["description"], "runner_type": "project_type",
            "paused": r["paused"], "active": not r["paused"], "is_shared": False,
            "name": None, "online": runner_status(r) == "online", "status": runner_status(r)}


def runner_detail_json(r):
    return runner_list_json(r) | {
        "tag_list": r["tags"],
        "run_untagged": r["run_untagged"],
        "contacted_at": now_iso(r["contacted_at"]) if r["contacted_at"] else None,
        "projects": [{"id": r["project_id"]}],
    }


def ts(t):
    return now_iso(t) if t else None


def pipeline_json(p):
    started, finished = p["started_at"], p["finished_at"]
    return {"id": p["id"], "iid": p["id"], "project_id": p["project_id"], "status": p["status"],
            "source": p["source"], "ref": p["ref"], "sha": p["sha"],
            "web_url": f"http://gitlab.double/p/-/pipelines/{p['id']}",
            "created_at": ts(p["created_at"]), "updated_at": now_iso(), "started_at": ts(started),
            "finished_at": ts(finished),
            "duration": (finished - started) if started and finished else None,
            "queued_duration": (started - p["created_at"]) if started else None}


def job_json(j):
    started = j["started_at"] if j["status"] not in ("pending", "created") else None
    return {"id": j["id"], "name": j["name"], "stage": "test", "status": j["status"],
            "ref": j["ref"], "tag": False, "allow_failure": False, "tag_list": j["tag_list"],
            "created_at": ts(j["created_at"]), "started_at": ts(started),
            "finished_at": ts(j["finished_at"]),
            "duration": (j["finished_at"] - started) if started and j["finished_at"] else None,
            "queued_duration": (started - j["created_at"]) if started else None,
            "failure_reason": j.get("failure_reason"), "runner": j.get("runner"),
            "pipeline": {"id": j["pipeline_id"], "project_id": j["project_id"], "status": STATE["pipelines"][j["pipeline_id"]]["status"]},
            "web_url": f"http://gitlab.double/p/-/jobs/{j['id']}"}


# --- CI file semantics ----------------------------------------------------------------------

def expand_jobs(content):
    """(name, tags, details) of every job the CI file defines, `parallel: N` expanded as
    `name i/N`; details are the job's `image` (string or `{name:}`), `script` and `cache`."""
    doc = yaml.safe_load(content) or {}
    out = []
    for name, job in doc.items():
        if name in ("workflow", "stages", "variables", "default", "include") or name.startswith("."):
            continue
        if not isinstance(job, dict):
            continue
        tags = job.get("tags") or []
        image = job.get("image", doc.get("image"))
        if isinstance(image, dict):
            image = image.get("name")
        script = job.get("script") or []
        cache = job.get("cache")
        details = {"image": image, "script": [script] if isinstance(script, str) else list(script),
                   # `cache:key` defaults to `default` (GitLab CI/CD YAML reference, `cache:key`)
                   "cache": {"key": str(cache.get("key", "default"))} if isinstance(cache, dict) else None}
        n = job.get("parallel")
        if isinstance(n, int) and n > 1:
            out += [(f"{name} {i}/{n}", tags, details) for i in range(1, n + 1)]
        else:
            out.append((name, tags, details))
    return out


def admits(content, source):
    """Whether `workflow: rules` admit a pipeline of `source` (the subset glrunner emits)."""
    doc = yaml.safe_load(content) or {}
    rules = (doc.get("workflow") or {}).get("rules")
    if not rules:
        return True
    for rule in rules:
        cond = rule.get("if")
        when = rule.get("when", "always")
        if cond is None:
            return when != "never"
        m = re.fullmatch(r'\$CI_PIPELINE_SOURCE\s*(==|!=)\s*"([a-z_]+)"', cond.strip())
        if not m:
            continue
        hit = (source == m.group(2)) if m.group(1) == "==" else (source != m.group(2))
        if hit:
            return when != "never"
    return False


def start_pipeline(project, ref, source):
    content = STATE["files"].get((project["id"], ref), {}).get(".gitlab-ci.yml")
    if content is None:
        return None, (400, {"message": {"base": ["Missing CI config file"]}})
    if not admits(content, source):
        # Chain::EvaluateWorkflowRules (lib/gitlab/ci/pipeline/chain/evaluate_workflow_rules.rb)
        return None, (400, {"message": {"base": ["Pipeline filtered out by workflow rules."]}})
    jobs = expand_jobs(content)
    t = time.time()
    limit = STATE["max_jobs_per_pipeline"]
    if limit and len(jobs) > limit:  # Quota::Size: seeds_size > ci_pipeline_size
        return None, (400, {"message": {"base": [
            f"The number of jobs has exceeded the limit of {limit}. Try splitting the configuration with "
            f"parent-child-pipelines {WEB_URL}/help/ci/debugging.md#pipeline-with-many-jobs-fails-to-start"]}})
    active = STATE["max_active_jobs"]
    if active:  # Chain::Limit::ActiveJobs: alive pipelines' jobs (24 h) + the new ones >= limit
        alive = sum(len(p["job_ids"]) for p in STATE["pipelines"].values()
                    if p["project_id"] == project["id"] and p["status"] in ALIVE and t - p["created_at"] < 86400)
        if alive + len(jobs) >= active:
            return None, (400, {"message": {"base": [ACTIVE_JOBS_EXCEEDED]}})
    pid = next_id("pipeline")
    p = {"id": pid, "project_id": project["id"], "status": "pending", "source": source, "ref": ref,
         "sha": "%040x" % IDS["commit"], "created_at": t, "started_at": None, "finished_at": None, "job_ids": []}
    for name, tags, details in jobs:
        jid = next_id("job")
        STATE["jobs"][jid] = {"id": jid, "name": name, "tag_list": tags, "status": "pending", "ref": ref,
                              "created_at": t, "started_at": None, "finished_at": None,
                              "pipeline_id": pid, "project_id": project["id"], **details}
        p["job_ids"].append(jid)
    STATE["pipelines"][pid] = p
    return p, None


# --- HTTP -----------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; the tests read /double/state
        pass

    def jobs_page(self, jobs, q):
        """One page of `jobs` (newest first) under `scope[]` and `page`/`per_page`, as both job
        lists read them (GitLab REST docs, "Jobs API": `scope[]` of the job statuses, at most 100
        per page, 20 by default); `None` for a scope GitLab refuses. Returns (jobs in scope, the
        page's jobs, page, per_page, next page or "")."""
        scope = self.query_lists.get("scope[]", []) + self.query_lists.get("scope", [])
        valid = {"created", "pending", "running", "failed", "success", "canceled", "skipped",
                 "waiting_for_resource", "manual"}
        if any(s not in valid for s in scope):
            return None
        if scope:
            jobs = [j for j in jobs if j["status"] in scope]
        per = min(int(q.get("per_page", 20)), 100)
        page = max(int(q.get("page", 1)), 1)
        chunk = jobs[(page - 1) * per: page * per]
        nxt = str(page + 1) if page * per < len(jobs) else ""
        return jobs, chunk, page, per, nxt

    def reply(self, status, body=None, headers=None):
        if getattr(self, "swallow", False):
            return None
        lost = getattr(self, "lost_answer", None)
        if lost is not None:  # GitLab acted; the answer is replaced on the way back
            self.lost_answer = None
            status, body, headers = lost, {"message": "injected fault after the effect"}, {}
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        # A HEAD response carries the headers of the GET but never its body: bytes written here
        # would sit on the kept-alive connection and corrupt the next response read from it.
        if self.command != "HEAD":
            self.wfile.write(data)

    def reply_text(self, status, text):
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        if "json" in (self.headers.get("Content-Type") or ""):
            return json.loads(raw)
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw.decode()).items()}

    def handle_any(self, method):
        self.lost_answer = None  # one handler serves every request of a kept-alive connection
        url = urllib.parse.urlsplit(self.path)
        path, query = url.path, {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        # Array parameters (`scope[]=pending&scope[]=running`) keep every value.
        self.query_lists = urllib.parse.parse_qs(url.query)
        if path.startswith("/double/"):
            return self.control(method, path)
        slow = None
        with LOCK:
            STATE["requests"] += 1
            for key, fault in STATE["faults"].items():
                fm, _, rx = key.partition(" ")
                if fm == method and fault[1] > 0 and re.fullmatch(rx, path):
                    if len(fault) > 2 and fault[2] > 0:  # let the first `skip` calls through
                        fault[2] -= 1
                        continue
                    fault[1] -= 1
                    if len(fault) > 3 and fault[3] == "after":
                        self.lost_answer = fault[0]
                        break
                    if len(fault) > 5 and fault[3] == "slow":
                        slow = (fault[0], float(fault[4]), float(fault[5]))
                        break
                    hdr = {"Retry-After": "1"} if fault[0] == 429 else {}
                    return self.reply(fault[0], {"message": "injected fault"}, hdr)
        auth = self.headers.get("PRIVATE-TOKEN") or (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if auth != TOKEN:
            return self.reply(401, {"message": "401 Unauthorized"})
        if not path.startswith("/api/v4/"):
            return self.reply(404, {"message": "404 Not Found"})
        # `include_any_scope?` (app/services/access_token_validation_service.rb); the refusal is
        # rack-oauth2's Bearer Forbidden with every registered scope, space-separated.
        registered = registered_scopes(method, path[len("/api/v4/"):])
        if registered is not None and not any(ok and name in STATE["scopes"] for name, ok in registered):
            return self.reply(403, {"error": "insufficient_scope", "error_description": INSUFFICIENT_SCOPE,
                                    "scope": " ".join(name for name, _ in registered)})
        body = self.body() if method in ("POST", "PUT") else {}
        if slow is not None:
            return self.slow(slow, method, path[len("/api/v4/"):], query, body)
        with LOCK:
            return self.api(method, path[len("/api/v4/"):], query, body)

    def slow(self, fault, method, path, query, body):
        """The slow effect: act EFFECT_AFTER seconds after arrival, answer STATUS after ANSWER_AFTER."""
        status, answer_after, effect_after = fault
        arrived = time.time()

        # A handler of its own that writes nothing: GitLab's answer to a client that has gone is lost.
        sink = Handler.__new__(Handler)
        sink.swallow, sink.command, sink.query_lists = True, method, self.query_lists

        def effect():
            time.sleep(effect_after)
            with LOCK:
                sink.api(method, path, query, body)

        threading.Thread(target=effect, daemon=True).start()
        time.sleep(max(0.0, answer_after - (time.time() - arrived)))
        try:
            return self.reply(status, {"message": "injected fault: the answer came late"})
        except OSError:  # the client gave up and closed the connection
            return None

    def project(self, ident):
        ident = urllib.parse.unquote(ident)
        if ident.isdigit():
            return STATE["projects"].get(int(ident))
        return next((p for p in STATE["projects"].values() if p["path_with_namespace"] == ident), None)

    def api(self, method, path, q, body):
        parts = path.split("/")
        nf = lambda what: self.reply(404, {"message": f"404 {what} Not Found"})  # noqa: E731
        if path == "version":
            return self.reply(200, {"version": STATE["version"], "revision": "double"})
        if path == "user":
            user = {"id": 1, "username": "double", "name": "Double"}
            if STATE["is_admin"]:  # Entities::UserWithAdmin only for admins (lib/api/users.rb)
                user["is_admin"] = True
            return self.reply(200, user)
        if path == "personal_access_tokens/self":
            return self.reply(200, {"id": 1, "name": "double", "scopes": STATE["scopes"], "active": True})
        if parts[0] == "groups" and len(parts) == 5 and parts[2:4] == ["members", "all"] and method == "GET":
            return member_reply(self, parts[4])
        if parts[0] == "namespaces" and method == "GET":
            full = urllib.parse.unquote("/".join(parts[1:]))
            nid = next((i for i, n in STATE["namespaces"].items() if n == full), None) or len(STATE["namespaces"]) + 1
            STATE["namespaces"][nid] = full
            kind = "user" if full == "double" else "group"
            ns = {"id": nid, "full_path": full, "path": full.rsplit("/", 1)[-1], "kind": kind}
            # EE: `expose :plan, if: can_admin_namespace` (ee/lib/ee/api/entities/namespace.rb):
            # a group's Owners, the user of a personal namespace, administrators.
            may_admin = acting_admin() or kind == "user" or STATE["access_level"] >= 50
            if STATE["plan"] and may_admin:
                ns["plan"] = STATE["plan"]
            return self.reply(200, ns)
        if path == "projects" and method == "POST":
            ns = STATE["namespaces"].get(int(body.get("namespace_id") or 0), "double")
            name = body.get("path") or body.get("name")
            pid = next_id("project")
            full = f"{ns}/{name}"
            p = {"id": pid, "name": name, "path": name, "path_with_namespace": full,
                 "default_branch": body.get("default_branch") or "main", "web_url": f"http://gitlab.double/{full}"}
            STATE["projects"][pid] = p
            STATE["branches"][pid] = {p["default_branch"]}
            IDS["commit"] += 1  # the README commit that initialises the default branch
            STATE["heads"][(pid, p["default_branch"])] = ("%040x" % IDS["commit"], "Initial commit")
            return self.reply(201, project_json(p))
        if parts[0] == "projects" and len(parts) >= 2:
            p = self.project(parts[1])
            if p is None:
                return nf("Project")
            rest = parts[2:]
            if not rest:
                if method == "DELETE":
                    STATE["projects"].pop(p["id"])
                    return self.reply(202, {"message": "202 Accepted"})
                return self.reply(200, project_json(p))
            return self.project_api(method, p, rest, q, body)
        if path == "user/runners" and method == "POST":
            if version_tuple(STATE["version"]) < (15, 10):
                return nf("Endpoint")
            # CreateRunnerService: 'Insufficient permissions' (reason :forbidden) without
            # :create_runners, which Maintainers, Owners and administrators have; forbidden!(msg)
            # renders "403 Forbidden - msg" (lib/api/helpers.rb).
            if STATE["access_level"] < 40 and not acting_admin():
                return self.reply(403, {"message": "403 Forbidden - Insufficient permissions"})
            p = STATE["projects"].get(int(body.get("project_id") or 0))
            if body.get("runner_type") != "project_type" or p is None:
                return self.reply(400, {"message": "project_id is invalid"})
            rid = next_id("runner")
            tags = body.get("tag_list") or []
            if isinstance(tags, str):
                tags = [t for t in tags.split(",") if t]
            token = "glrt-" + secrets.token_urlsafe(15)
            # POST /user/runners: `run_untagged` defaults to true (lib/api/user_runners.rb,
            # `optional :run_untagged, type: Boolean`, the column's default in db/structure.sql).
            run_untagged = body.get("run_untagged", True)
            if isinstance(run_untagged, str):
                run_untagged = run_untagged.lower() == "true"
            STATE["runners"][rid] = {"id": rid, "token": token, "tags": tags, "project_id": p["id"],
                                     "run_untagged": bool(run_untagged),
                                     "description": body.get("description"), "paused": bool(body.get("paused")),
                                     "contacted_at": None}
            return self.reply(201, {"id": rid, "token": token, "token_expires_at": None})
        if parts[0] == "runners" and len(parts) == 2 and parts[1].isdigit():
            r = STATE["runners"].get(int(parts[1]))
            if r is None:
                return nf("Runner")
            if method == "DELETE":
                STATE["runners"].pop(r["id"])
                return self.reply(204)
            return self.reply(200, runner_detail_json(r))
        return nf("Endpoint")

    def project_api(self, method, p, rest, q, body):
        pid = p["id"]
        if len(rest) == 3 and rest[:2] == ["members", "all"] and method == "GET":
            return member_reply(self, rest[2])
        if rest == ["runners"] and method == "GET":
            rs = [r for r in STATE["runners"].values() if r["project_id"] == pid]
            if q.get("tag_list"):
                want = set(q["tag_list"].split(","))
                rs = [r for r in rs if want <= set(r["tags"])]
            return self.reply(200, [runner_list_json(r) for r in rs], {"x-next-page": "", "x-total": str(len(rs))})
        if rest[:2] == ["repository", "files"] and len(rest) >= 3 and method in ("GET", "HEAD"):
            fpath = urllib.parse.unquote("/".join(rest[2:]))
            files = STATE["files"].get((pid, q.get("ref", p["default_branch"])), {})
            if fpath not in files:
                return self.reply(404, {"message": "404 File Not Found"})
            return self.reply(200, {"file_path": fpath, "content": base64.b64encode(files[fpath].encode()).decode(), "encoding": "base64"})
        if rest[:2] == ["repository", "branches"] and len(rest) >= 3 and method in ("GET", "DELETE"):
            name = urllib.parse.unquote("/".join(rest[2:]))
            if name not in STATE["branches"][pid]:
                return self.reply(404, {"message": "404 Branch Not Found"})
            if method == "DELETE":
                if name == p["default_branch"]:
                    return self.reply(405, {"message": "The default branch of a project cannot be deleted."})
                STATE["branches"][pid].discard(name)
                STATE["files"].pop((pid, name), None)
                STATE["heads"].pop((pid, name), None)
                return self.reply(204)
            sha, title = STATE["heads"].get((pid, name), ("%040x" % 0, ""))
            return self.reply(200, {"name": name, "default": name == p["default_branch"],
                                    "commit": {"id": sha, "short_id": sha[:8], "title": title}})
        if rest == ["pipelines"] and method == "GET":
            pls = [pl for pl in STATE["pipelines"].values() if pl["project_id"] == pid
                   and (not q.get("ref") or pl["ref"] == q["ref"])]
            pls.sort(key=lambda pl: -pl["id"])  # newest first
            per = min(int(q.get("per_page", 20)), 100)
            return self.reply(200, [pipeline_json(pl) for pl in pls[:per]], {"x-next-page": ""})
        if rest == ["repository", "commits"] and method == "POST":
            branch = body.get("branch")
            start = body.get("start_branch")
            branches = STATE["branches"][pid]
            if branch not in branches:
                if not start or start not in branches:
                    return self.reply(400, {"message": "You can only create or edit files when you are on a branch"})
                STATE["files"][(pid, branch)] = dict(STATE["files"].get((pid, start), {}))
                branches.add(branch)
            files = STATE["files"].setdefault((pid, branch), {})
            for a in body.get("actions", []):
                exists = a["file_path"] in files
                if a["action"] == "create" and exists:
                    return self.reply(400, {"message": "A file with this name already exists"})
                if a["action"] == "update" and not exists:
                    return self.reply(400, {"message": "A file with this name doesn't exist"})
                if a["action"] == "delete":
                    files.pop(a["file_path"], None)
                else:
                    files[a["file_path"]] = a.get("content") or ""
            IDS["commit"] += 1
            msg = body.get("commit_message", "")
            STATE["heads"][(pid, branch)] = ("%040x" % IDS["commit"], msg.splitlines()[0] if msg else "")
            if "[skip ci]" not in msg.lower() and "[ci skip]" not in msg.lower() and ".gitlab-ci.yml" in files:
                start_pipeline(p, branch, "push")  # GitLab runs the push hooks; rules may refuse quietly
            return self.reply(201, {"id": "%040x" % IDS["commit"], "short_id": "%08x" % IDS["commit"], "title": msg.splitlines()[0] if msg else ""})
        if rest == ["pipelines"] and method == "GET":
            pls = sorted((pl for pl in STATE["pipelines"].values() if pl["project_id"] == pid
                          and ("ref" not in q or pl["ref"] == q["ref"])), key=lambda pl: -pl["id"])
            per = min(int(q.get("per_page", 20)), 100)
            return self.reply(200, [pipeline_json(pl) for pl in pls[:per]])
        if rest == ["pipeline"] and method == "POST":
            if body.get("variables") and STATE["refuse_variables"]:
                return self.reply(400, {"message": {"base": ["Insufficient permissions to set pipeline variables"]}})
            ref = body.get("ref") or p["default_branch"]
            pl, err = start_pipeline(p, ref, "api")
            if err:
                return self.reply(*err)
            return self.reply(201, pipeline_json(pl))
        if rest[0] == "pipelines" and len(rest) >= 2 and rest[1].isdigit():
            pl = STATE["pipelines"].get(int(rest[1]))
            if pl is None or pl["project_id"] != pid:
                return self.reply(404, {"message": "404 Not found"})
            if rest[2:] == [] and method == "GET":
                return self.reply(200, pipeline_json(pl))
            if rest[2:] == ["cancel"] and method == "POST":
                for j in pl["job_ids"]:
                    if STATE["jobs"][j]["status"] in ("pending", "running", "created"):
                        STATE["jobs"][j]["status"] = "canceled"
                        STATE["jobs"][j]["finished_at"] = time.time()
                if pl["status"] not in ("success", "failed"):
                    pl["status"] = "canceled"
                    pl["finished_at"] = time.time()
                return self.reply(200, pipeline_json(pl))
            if rest[2:] == ["jobs"] and method == "GET":
                jobs = sorted((STATE["jobs"][j] for j in pl["job_ids"]), key=lambda j: -j["id"])
                paged = self.jobs_page(jobs, q)
                if paged is None:
                    return self.reply(400, {"error": "scope does not have a valid value"})
                jobs, chunk, page, per, nxt = paged
                return self.reply(200, [job_json(j) for j in chunk],
                                  {"x-next-page": nxt, "x-page": str(page), "x-per-page": str(per),
                                   "x-total": str(len(jobs)), "x-total-pages": str(max(1, -(-len(jobs) // per)))})
        if rest == ["jobs"] and method == "GET":
            # GitLab REST docs, "Jobs API -> List project jobs": newest first
            # (`user_project.builds.order(id: :desc)`, lib/api/ci/jobs.rb), `scope[]`, offset
            # pagination without counts (`without_count: true`): `x-next-page` but no `x-total`.
            jobs = sorted((j for j in STATE["jobs"].values() if j["project_id"] == pid), key=lambda j: -j["id"])
            paged = self.jobs_page(jobs, q)
            if paged is None:
                return self.reply(400, {"error": "scope does not have a valid value"})
            _, chunk, page, per, nxt = paged
            return self.reply(200, [job_json(j) for j in chunk],
                              {"x-next-page": nxt, "x-page": str(page), "x-per-page": str(per)})
        if rest[0] == "jobs" and len(rest) == 3 and rest[1].isdigit() and rest[2] == "trace" and method == "GET":
            # `text/plain`, the raw log, or '' while there is none (`build.trace.raw || ''`,
            # lib/api/ci/jobs.rb); another project's job is 404 like any job route.
            j = STATE["jobs"].get(int(rest[1]))
            if j is None or j["project_id"] != pid:
                return self.reply(404, {"message": "404 Not found"})
            return self.reply_text(200, j.get("trace", ""))
        if rest[0] == "jobs" and len(rest) == 2 and rest[1].isdigit():
            j = STATE["jobs"].get(int(rest[1]))
            if j is None or j["project_id"] != pid:
                return self.reply(404, {"message": "404 Not found"})
            return self.reply(200, job_json(j))
        return self.reply(404, {"message": "404 Endpoint Not Found"})

    def control(self, method, path):
        with LOCK:
            if path == "/double/state":
                by_source = {}
                for pl in STATE["pipelines"].values():
                    by_source[pl["source"]] = by_source.get(pl["source"], 0) + 1
                jobs = {}
                for j in STATE["jobs"].values():
                    jobs[j["status"]] = jobs.get(j["status"], 0) + 1
                return self.reply(200, {
                    "projects": len(STATE["projects"]), "runners": len(STATE["runners"]),
                    "online_runners": sum(runner_status(r) == "online" for r in STATE["runners"].values()),
                    "pipelines": len(STATE["pipelines"]), "pipelines_by_source": by_source,
                    "active_pipelines": sum(p["status"] in ("pending", "running", "created") for p in STATE["pipelines"].values()),
                    "jobs": jobs, "requests": STATE["requests"],
                    "branches": sum(len(b) for b in STATE["branches"].values())})
            if path == "/double/faults" and method == "POST":
                for k, v in self.body().items():
                    STATE["faults"][k] = list(v)
                return self.reply(200, {"faults": STATE["faults"]})
            if path == "/double/config" and method == "POST":
                b = self.body()
                for k in ("refuse_variables", "max_jobs_per_pipeline", "version", "scopes", "access_level", "plan",
                          "is_admin", "admin_mode", "max_active_jobs", "wrong_image_job", "shared_cache"):
                    if k in b:
                        STATE[k] = b[k]
                return self.reply(200, {})
            m = re.fullmatch(r"/double/runners/(\d+)", path)
            if m and method == "POST":
                r = STATE["runners"].get(int(m.group(1)))
                if r is None:
                    return self.reply(404, {"message": "no such runner"})
                b = self.body()
                if "contacted_ago" in b:
                    r["contacted_at"] = time.time() - float(b["contacted_ago"])
                if b.get("manager") is True:
                    STATE["managers"].add(r["id"])
                elif b.get("manager") is False:
                    STATE["managers"].discard(r["id"])
                return self.reply(200, runner_detail_json(r))
        return self.reply(404, {"message": "no such control"})

    def do_GET(self):
        self.handle_any("GET")

    def do_POST(self):
        self.handle_any("POST")

    def do_PUT(self):
        self.handle_any("PUT")

    def do_DELETE(self):
        self.handle_any("DELETE")

    def do_HEAD(self):
        self.handle_any("HEAD")


def main():
    global KUBE, TOKEN
    args = sys.argv[1:]
    port = int(args[0])
    if "--kubeconfig" in args:
        KUBE = load_kubeconfig(args[args.index("--kubeconfig") + 1])
    if "--token" in args:
        TOKEN = args[args.index("--token") + 1]
    threading.Thread(target=runners_loop, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"GLRUNNER_TEST_GITLAB_URL=http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
