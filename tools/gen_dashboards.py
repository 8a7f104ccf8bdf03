#!/usr/bin/env python3
"""Generate the Grafana dashboards in dashboards/*.json (classic JSON model, schemaVersion 41).

The dashboards are code so that every panel follows the same rules: the datasource is the
`datasource` template variable, every query filters on the `job` and `instance` variables,
counters and histograms are always read through rate() over $__rate_interval, every panel has
a description and a unit, and uids are fixed.

    python3 tools/gen_dashboards.py            # (re)write dashboards/*.json
    python3 tools/gen_dashboards.py --check    # exit 1 if a file differs from what would be written

Only metric names from src/metrics.rs may appear here; tools/check_dashboards.py enforces it.
"""
import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job",instance=~"$instance"'
RI = "[$__rate_interval]"


def m(name, extra=""):
    """A selector for `name` filtered on the job/instance variables (plus `extra` matchers)."""
    return f"{name}{{{SEL}{',' + extra if extra else ''}}}"


def rate(name, extra=""):
    return f"rate({m(name, extra)}{RI})"


def ratio(num, den, by, extra=""):
    """sum by (...) rate(num) / sum by (...) rate(den)."""
    return f"sum by ({by}) ({rate(num, extra)}) / sum by ({by}) ({rate(den, extra)})"


def mean(hist, by, extra=""):
    """Mean of a histogram's observations over the rate window."""
    return ratio(f"{hist}_sum", f"{hist}_count", by, extra)


def quantile(q, hist, by, extra=""):
    by_le = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({by_le}) ({rate(hist + '_bucket', extra)}))"


def t(expr, legend=""):
    return (expr, legend)


class Board:
    """A dashboard being laid out on Grafana's 24-column grid, left to right, top to bottom."""

    def __init__(self, uid, title, description, tags, variables=()):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.variables = list(variables)
        self.panels = []
        self.next_id = 1
        self.x = self.y = self.row_h = 0

    def _place(self, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        self.panels.append({"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                            "id": self._id(), "panels": [], "title": title, "type": "row"})
        self.y += 1

    def _targets(self, targets):
        return [{"datasource": DS, "expr": e, "legendFormat": lg or "__auto", "range": True,
                 "refId": chr(ord("A") + i)} for i, (e, lg) in enumerate(targets)]

    def ts(self, title, description, unit, targets, w=8, h=8, minmax=None):
        defaults = {"custom": {"drawStyle": "line", "fillOpacity": 10, "lineWidth": 1,
                               "showPoints": "never", "spanNulls": True},
                    "unit": unit}
        if minmax:
            defaults["min"], defaults["max"] = minmax
        self.panels.append({
            "datasource": DS, "description": description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": self._place(w, h), "id": self._id(),
            "options": {"legend": {"calcs": ["lastNotNull"], "displayMode": "list",
                                   "placement": "bottom", "showLegend": True},
                        "tooltip": {"mode": "multi", "sort": "desc"}},
            "targets": self._targets(targets), "title": title, "type": "timeseries"})

    def stat(self, title, description, unit, targets, w=4, h=4, mappings=None):
        defaults = {"unit": unit, "mappings": mappings or []}
        self.panels.append({
            "datasource": DS, "description": description,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "gridPos": self._place(w, h), "id": self._id(),
            "options": {"colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                        "orientation": "auto", "textMode": "auto",
                        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
            "targets": self._targets(targets), "title": title, "type": "stat"})

    def to_json(self):
        var_list = [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "refresh": 1, "hide": 0, "includeAll": False, "multi": False},
            query_var("job", "label_values(azr_steps_total, job)"),
            query_var("instance", 'label_values(azr_steps_total{job=~"$job"}, instance)'),
        ] + self.variables
        return {
            "annotations": {"list": []},
            "description": self.description,
            "editable": True,
            "graphTooltip": 1,
            "links": [{"asDropdown": True, "icon": "external link", "includeVars": True,
                       "keepTime": True, "tags": ["azr"], "targetBlank": False,
                       "title": "azr dashboards", "tooltip": "", "type": "dashboards",
                       "url": ""}],
            "panels": self.panels,
            "refresh": "10s",
            "schemaVersion": 41,
            "tags": ["azr"] + self.tags,
            "templating": {"list": var_list},
            "time": {"from": "now-30m", "to": "now"},
            "timepicker": {},
            "timezone": "utc",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }


def query_var(name, query):
    return {"name": name, "label": name, "type": "query", "datasource": DS,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query, "refresh": 2, "hide": 0, "includeAll": True, "multi": True,
            "allValue": ".+", "sort": 1}


def custom_var(name, values):
    return {"name": name, "label": name, "type": "custom", "query": ",".join(values),
            "hide": 0, "includeAll": True, "multi": True, "allValue": ".+",
            "options": [{"selected": False, "text": v, "value": v} for v in values]}


RATIO = (0, 1)
NODE = 'node=~"$node"'
TR_LEGEND = "{{task}}/{{role}}"


def overview():
    b = Board("azr-overview", "azr / Overview",
              "Is self-play running, learning and healthy: progress, rewards, loss, throughput, evaluation.",
              ["overview"])
    b.row("Progress")
    b.stat("Steps", "Optimizer steps completed.", "short", [t(f"max({m('azr_steps_total')})")])
    b.stat("Policy version", "Version of the latest published policy snapshot.", "short",
           [t(f"max({m('azr_policy_version')})")])
    b.stat("Steps / min", "Optimizer steps per minute over the rate window.", "short",
           [t(f"sum({rate('azr_steps_total')}) * 60")])
    b.stat("Generated tokens / s", "Tokens sampled by the policy per second, all tasks and roles.",
           "short", [t(f"sum({rate('azr_tokens_generated_total')})")])
    b.stat("Uptime", "Time since the azr process registered its metrics.", "s",
           [t(f"max(time() - {m('azr_start_time_seconds')})")])
    b.stat("Actor restarts", "Actor restarts by the supervisor since start (all actors).", "short",
           [t(f"sum({m('azr_actor_restarts_total')})")])
    b.row("Self-play")
    b.ts("Mean reward, last step", "Mean reward of the last step's sub-batch per task kind and role.",
         "short", [t(m("azr_reward_mean"), TR_LEGEND)])
    b.ts("Accuracy", "Correct answers / answers checked per task kind and role (role=propose: "
         "estimator solve rate on new proposals).", "percentunit",
         [t(ratio("azr_answers_correct_total", "azr_answers_total", "task, role"), TR_LEGEND)],
         minmax=RATIO)
    b.ts("Valid proposals", "Share of proposals the executor validated into tasks, per task kind.",
         "percentunit", [t(ratio("azr_proposals_valid_total", "azr_proposals_total", "task"),
                           "{{task}}")], minmax=RATIO)
    b.row("Learner")
    b.ts("Policy-gradient loss", "PPO-clip loss of the last step.", "short",
         [t(f"max({m('azr_pg_loss')})", "pg loss")])
    b.ts("Step time", "Wall time per optimizer step: median and p90 over the rate window, and the "
         "last step.", "s",
         [t(quantile(0.5, "azr_step_duration_seconds", ""), "p50"),
          t(quantile(0.9, "azr_step_duration_seconds", ""), "p90"),
          t(f"max({m('azr_last_step_duration_seconds')})", "last")])
    b.ts("Throughput", "Tokens sampled and tokens trained on per second.", "short",
         [t(f"sum({rate('azr_tokens_generated_total')})", "generated tok/s"),
          t(f"sum({rate('azr_tokens_trained_total')})", "trained tok/s")])
    b.row("Executor and evaluation")
    b.ts("Executions / s", "Sandboxed executions per second by outcome.", "ops",
         [t(f"sum by (status) ({rate('azr_executions_total')})", "{{status}}")], w=12)
    b.ts("Evaluation accuracy", "Accuracy of the latest evaluation per benchmark.", "percentunit",
         [t(f"max by (benchmark) ({m('azr_eval_accuracy_ratio')})", "{{benchmark}}")],
         w=12, minmax=RATIO)
    return b


def self_play():
    tr = 'task=~"$task",role=~"$role"'
    tk = 'task=~"$task"'
    b = Board("azr-self-play", "azr / Self-play",
              "AZR self-play per task kind x role: rewards, accuracy, proposals, learnability, novelty, "
              "response lengths and clipping.", ["self-play"],
              # The task kinds come from the exported series (the registry's kinds), never a list.
              [query_var("task", "label_values(azr_rollouts_total, task)"),
               custom_var("role", ["propose", "solve"])])
    b.row("Rewards")
    b.ts("Mean reward", "Mean reward of scored rollouts over the rate window.", "short",
         [t(mean("azr_reward", "task, role", tr), TR_LEGEND)])
    b.ts("Mean reward, last step", "Mean reward of the last step's sub-batch.", "short",
         [t(m("azr_reward_mean", tr), TR_LEGEND)])
    b.ts("Reward p10 / p50 / p90", "Quantiles of per-rollout rewards (all selected task kinds "
         "and roles pooled).", "short",
         [t(quantile(q, "azr_reward", "", tr), f"p{int(q * 100)}") for q in (0.1, 0.5, 0.9)])
    b.row("Accuracy")
    b.ts("Accuracy", "Correct answers / answers checked (role=propose: Monte Carlo estimator "
         "samples on new proposals).", "percentunit",
         [t(ratio("azr_answers_correct_total", "azr_answers_total", "task, role", tr),
            TR_LEGEND)], minmax=RATIO)
    b.ts("Accuracy, last step", "Share of correct answers in the last step.", "percentunit",
         [t(m("azr_accuracy_ratio", tr), TR_LEGEND)], minmax=RATIO)
    b.ts("Answers checked / s", "Answers checked per second.", "ops",
         [t(f"sum by (task, role) ({rate('azr_answers_total', tr)})", TR_LEGEND)])
    b.row("Proposals and buffers")
    b.ts("Valid-proposal rate", "Valid proposals / proposals over the rate window.", "percentunit",
         [t(ratio("azr_proposals_valid_total", "azr_proposals_total", "task", tk), "{{task}}")],
         minmax=RATIO)
    b.ts("Valid-proposal rate, last step", "Share of the last step's proposals that were valid.",
         "percentunit", [t(m("azr_valid_proposal_ratio", tk), "{{task}}")], minmax=RATIO)
    b.ts("Proposals / s", "Proposals produced per second.", "ops",
         [t(f"sum by (task) ({rate('azr_proposals_total', tk)})", "{{task}}")])
    b.ts("Learnability reward", "Mean and median learnability reward (1 - solve rate) of valid "
         "proposals.", "short",
         [t(mean("azr_learnability_reward", "task", tk), "mean {{task}}"),
          t(quantile(0.5, "azr_learnability_reward", "task", tk), "p50 {{task}}")])
    b.ts("Task buffer sizes", "Validated tasks held in each task buffer.", "short",
         [t(m("azr_buffer_tasks", tk), "{{task}}")])
    b.ts("Rollouts to learner / s", "Scored rollouts consumed by the learner per second.", "ops",
         [t(f"sum by (task, role) ({rate('azr_rollouts_total', tr)})", TR_LEGEND)])
    b.ts("Novel share of valid proposals", "Valid proposals whose normalised program shape is "
         "in neither the pretraining corpus nor the shapes already admitted to the buffers, over "
         "the valid proposals in the rate window.", "percentunit",
         [t(ratio("azr_proposals_novel_total", "azr_proposals_valid_total", "task", tk),
            "{{task}}")], minmax=RATIO)
    b.ts("Novel share, last step", "Share of the last step's valid proposals with a novel "
         "program shape.", "percentunit", [t(m("azr_novel_proposal_ratio", tk), "{{task}}")],
         minmax=RATIO)
    b.ts("Shape repetition, last step", "Mean share of the kind's earlier admitted proposals "
         "that had the same program shape, over the last step's valid proposals (the repetition "
         "term's input; rising means the proposer collapses onto few shapes).", "percentunit",
         [t(m("azr_proposal_shape_share", tk), "{{task}}")], minmax=RATIO)
    b.ts("Distinct program shapes", "Distinct normalised program shapes admitted to each task "
         "buffer over the run (the task store's shape memory).", "short",
         [t(m("azr_program_shapes", tk), "{{task}}")])
    b.ts("Solver tasks by source / s", "Solver tasks drawn per second by where they came from: "
         "seed, proposed (the task buffers), replay (the pretraining-corpus pool, "
         "selfplay.replay_fraction).", "ops",
         [t(f"sum by (task, source) ({rate('azr_solver_tasks_total', tk)})",
            "{{task}} {{source}}")])
    b.ts("Greedy probe accuracy", "Share of probed proposals whose greedy answer was correct, "
         "over the probes in the rate window (the estimator probes only with "
         "tasks.buffer.prefer_greedy_miss; greedy-miss targeting draws solver tasks from the rest "
         "that some Monte Carlo sample solved).", "percentunit",
         [t(ratio("azr_greedy_probes_correct_total", "azr_greedy_probes_total", "task", tk),
            "{{task}}")], minmax=RATIO)
    b.row("Responses")
    b.ts("Response length p50 / p90", "Quantiles of generated sequence lengths in tokens.",
         "short", [t(quantile(0.5, "azr_response_length_tokens", "task, role", tr),
                     "p50 " + TR_LEGEND),
                   t(quantile(0.9, "azr_response_length_tokens", "task, role", tr),
                     "p90 " + TR_LEGEND)])
    b.ts("Mean response length", "Mean generated sequence length in tokens.", "short",
         [t(mean("azr_response_length_tokens", "task, role", tr), TR_LEGEND)])
    b.ts("Clip ratio", "Share of generated sequences cut at max_new_tokens.", "percentunit",
         [t(ratio("azr_responses_truncated_total", "azr_responses_total", "task, role", tr),
            TR_LEGEND)], minmax=RATIO)
    b.ts("Generated tokens / s", "Tokens sampled per second.", "short",
         [t(f"sum by (task, role) ({rate('azr_tokens_generated_total', tr)})", TR_LEGEND)],
         w=24)
    return b


def learner():
    b = Board("azr-learner", "azr / Learner",
              "The learner: losses, KL, entropy, clipping, gradients, learning rate, step and "
              "phase times, staleness.", ["learner"])
    b.row("Optimization")
    kl_legends = {"azr_kl": "to sampling policy", "azr_kl_reference": "to reference"}
    for names, title, desc, unit in [
        (["azr_pg_loss"], "Policy-gradient loss", "PPO-clip loss of the last step.", "short"),
        (["azr_kl", "azr_kl_reference"], "KL",
         "Mean per-token KL of the last step: to the sampling policy (PPO approx_kl, azr_kl) and "
         "to the reference weights under learner.loss.kl_estimator (azr_kl_reference, 0 when "
         "kl_coef = 0).", "short"),
        (["azr_entropy"], "Entropy", "Mean per-token entropy (nats) of the last step.", "short"),
        (["azr_pg_clipped_ratio"], "Clip fraction",
         "Share of response tokens whose importance ratio was clipped.", "percentunit"),
        (["azr_grad_norm"], "Gradient norm", "Global gradient L2 norm before clipping.", "short"),
        (["azr_learning_rate"], "Learning rate", "Learning rate of the last step.", "sci"),
    ]:
        b.ts(title, desc, unit,
             [t(f"max({m(n)})", kl_legends[n] if len(names) > 1 else title)
              for n in names])
    b.row("Step time")
    b.ts("Step time", "Median, p90 and mean wall time per optimizer step over the rate window.",
         "s", [t(quantile(0.5, "azr_step_duration_seconds", ""), "p50"),
               t(quantile(0.9, "azr_step_duration_seconds", ""), "p90"),
               t(f"sum({rate('azr_step_duration_seconds_sum')}) / "
                 f"sum({rate('azr_step_duration_seconds_count')})", "mean")])
    b.ts("Last step time", "Wall time of the last step.", "s",
         [t(f"max({m('azr_last_step_duration_seconds')})", "last step")])
    b.ts("Steps / min", "Optimizer steps per minute.", "short",
         [t(f"sum({rate('azr_steps_total')}) * 60", "steps/min")])
    b.ts("Phase time (mean)", "Mean wall time of each step phase over the rate window.", "s",
         [t(mean("azr_phase_duration_seconds", "phase"), "{{phase}}")])
    b.ts("Phase time p90", "p90 wall time of each step phase.", "s",
         [t(quantile(0.9, "azr_phase_duration_seconds", "phase"), "{{phase}}")])
    b.ts("Last phase time", "Wall time of the last instance of each phase.", "s",
         [t(f"max by (phase) ({m('azr_last_phase_duration_seconds')})", "{{phase}}")])
    b.row("Throughput, versions and staleness")
    b.ts("Tokens trained / s", "Response tokens the learner trained on per second.", "short",
         [t(f"sum({rate('azr_tokens_trained_total')})", "trained tok/s")])
    b.ts("Policy version", "Latest published policy version.", "short",
         [t(f"max({m('azr_policy_version')})", "version")])
    b.ts("Rollout staleness", "Median and p90 staleness (versions) of consumed rollouts, and the "
         "largest in the last batch.", "short",
         [t(quantile(0.5, "azr_rollout_staleness", ""), "p50"),
          t(quantile(0.9, "azr_rollout_staleness", ""), "p90"),
          t(f"max({m('azr_policy_staleness')})", "max last step")])
    b.stat("Checkpoints", "Checkpoints written since start.", "short",
           [t(f"max({m('azr_checkpoints_total')})")], w=6)
    # dataflow branch: health of the off-policy correction and of the overlap.
    b.row("Off-policy correction and overlap")
    b.ts("Importance weights", "Mean and std of the per-token importance weights (proximal / "
         "behaviour policy) of the last update: mean about 1 (warn < 0.5 or > 2), std < 0.5 good.",
         "short",
         [t(f"max({m('azr_importance_weight_mean')})", "mean"),
          t(f"max({m('azr_importance_weight_std')})", "std")])
    b.ts("Effective sample size", "Normalised ESS (sum w)^2 / (n sum w^2) of the last update's "
         "importance weights: > 0.5 good, < 0.3 bad.", "percentunit",
         [t(f"max({m('azr_effective_sample_size')})", "ESS")], minmax=RATIO)
    b.ts("Idle shares", "Share of the last step the learner thread waited for its batch, and "
         "the rollout engine had nothing to decode.", "percentunit",
         [t(f"max({m('azr_trainer_idle_ratio')})", "trainer idle"),
          t(f"max({m('azr_rollout_idle_ratio')})", "rollout idle")], minmax=RATIO)
    b.ts("Rollouts without reward / s", "Generations whose sandbox, executor or engine failed: "
         "left out of training, never scored 0.", "ops",
         [t(f"sum by (task, role) ({rate('azr_rollouts_unrewarded_total')})",
            "{{task}}/{{role}}")], w=24)
    return b


def executor():
    ex = 'actor="executor"'
    b = Board("azr-executor", "azr / Executor",
              "The sandboxed Python executor: executions per second by outcome, latency, "
              "isolation layers.", ["executor"])
    b.row("Executions")
    b.ts("Executions / s by status", "Sandboxed executions per second by outcome status.", "ops",
         [t(f"sum by (status) ({rate('azr_executions_total')})", "{{status}}")])
    b.ts("Outcome share", "Share of executions per outcome status.", "percentunit",
         [t(f"sum by (status) ({rate('azr_executions_total')}) / ignoring(status) group_left "
            f"sum({rate('azr_executions_total')})", "{{status}}")], minmax=RATIO)
    b.ts("Latency", "p50 / p90 / p99 and mean wall time of one execution.", "s",
         [t(quantile(0.5, "azr_execution_duration_seconds", ""), "p50"),
          t(quantile(0.9, "azr_execution_duration_seconds", ""), "p90"),
          t(quantile(0.99, "azr_execution_duration_seconds", ""), "p99"),
          t(f"sum({rate('azr_execution_duration_seconds_sum')}) / "
            f"sum({rate('azr_execution_duration_seconds_count')})", "mean")])
    b.row("Sandbox and actor")
    b.stat("Isolation layers", "1 = the layer was active at executor start, 0 = missing.", "none",
           [t(f"max by (layer) ({m('azr_executor_isolation_layer')})", "{{layer}}")], w=12,
           mappings=[{"type": "value", "options": {"0": {"text": "off", "color": "red"},
                                                   "1": {"text": "on", "color": "green"}}}])
    b.ts("Executor busy fraction", "Share of wall time the executor actor spent working.",
         "percentunit", [t(f"sum({rate('azr_actor_work_duration_seconds_sum', ex)})", "busy")],
         w=6)
    b.stat("Executor restarts", "Restarts of the executor actor since start.", "short",
           [t(f"sum({m('azr_actor_restarts_total', ex)})")], w=6)
    b.ts("Fork-server replacements", "Executor workers killed and replaced per second: dead, hung, "
         "failed job setup, or a failed per-job health check (rlimits, nice, affinity, scheduler, "
         "I/O priority changed).", "ops",
         [t(f"sum({rate('azr_executor_worker_replacements_total')})", "replacements/s")], w=12)
    b.stat("Fork-server replacements (total)", "Executor workers replaced since start.", "short",
           [t(f"sum({m('azr_executor_worker_replacements_total')})")], w=12)
    return b


def system():
    b = Board("azr-system", "azr / System health",
              "Actors, queues, process resources and evaluation: where the pipeline waits and "
              "whether it recovers.", ["system"],
              [query_var("node", 'label_values(azr_cluster_jobs_total{job=~"$job"}, node)')])
    b.row("Actors")
    b.ts("Busy fraction by actor", "Share of wall time each actor spent working.", "percentunit",
         [t(f"sum by (actor) ({rate('azr_actor_work_duration_seconds_sum')})", "{{actor}}")])
    b.ts("Work items / s by actor", "Units of work each actor handled per second.", "ops",
         [t(f"sum by (actor) ({rate('azr_actor_work_duration_seconds_count')})", "{{actor}}")])
    b.ts("Work item time p90 by actor", "p90 duration of one unit of work per actor.", "s",
         [t(quantile(0.9, "azr_actor_work_duration_seconds", "actor"), "{{actor}}")])
    b.stat("Restarts by actor", "Actor restarts by the supervisor since start.", "short",
           [t(f"sum by (actor) ({m('azr_actor_restarts_total')})", "{{actor}}")], w=12)
    b.ts("Retried work items / s", "In-flight work re-sent after an actor restart.", "ops",
         [t(f"sum by (actor) ({rate('azr_work_retries_total')})", "{{actor}}")], w=12, h=4)
    b.row("Cluster")
    b.ts("Cluster nodes up", "Worker nodes (azr node) the head admitted whose session is up.",
         "short", [t(f"max({m('azr_cluster_nodes_up')})", "nodes up")], w=8, h=6)
    b.ts("Cluster work / s by node", "Job attempts each node (head: the head's own executor "
         "worker, rollout engine and evaluator) completed per second, by work: executor (a "
         "proposal validated), rollout (a generation request) or eval (a due evaluation "
         "scored).", "ops",
         [t(f"sum by (node, work) ({rate('azr_cluster_jobs_total', NODE + ',outcome=' + chr(34) + 'completed' + chr(34))})",
            "{{node}} {{work}}")], w=8, h=6)
    b.ts("Cluster failures / s by node", "Job attempts lost with a node (session ended, send "
         "failed, timed out) or refused by it (rollout weights older than the staleness bound "
         "allows; an evaluator without the pinned snapshot), per second; each is re-issued "
         "elsewhere (an evaluation at the latest on the head).", "ops",
         [t(f"sum by (node, work, outcome) ({rate('azr_cluster_jobs_total', NODE + ',outcome!=' + chr(34) + 'completed' + chr(34))})",
            "{{node}} {{work}} {{outcome}}")], w=8, h=6)
    b.ts("Rollout weights version by node", "Policy version of the last weight snapshot each "
         "rollout engine installed (head: the version the learner published last).", "short",
         [t(f"max by (node) ({m('azr_cluster_weights_version', NODE)})", "{{node}}")], w=12, h=6)
    b.ts("Weights sent / s by node", "Bytes of weight snapshots the head sent to each rollout "
         "node (every version) or evaluator node (each evaluation's pinned version) per "
         "second.", "Bps",
         [t(f"sum by (node) ({rate('azr_cluster_weights_sent_bytes_total', NODE)})", "{{node}}")],
         w=12, h=6)
    b.row("Queues")
    b.ts("Queue depth", "Items waiting in each bounded channel.", "short",
         [t(f"max by (queue) ({m('azr_queue_depth')})", "{{queue}}")], w=12)
    b.ts("Queue fill", "Queue depth / capacity (queues with a capacity).", "percentunit",
         [t(f"max by (queue) ({m('azr_queue_depth')} / ({m('azr_queue_capacity')} > 0))",
            "{{queue}}")], w=12, minmax=RATIO)
    b.row("Process")
    b.ts("Resident memory", "Resident set size of the azr process.", "bytes",
         [t(m("azr_process_resident_memory_bytes"), "{{instance}}")])
    b.ts("CPU usage", "CPU cores used by the azr process (user + system).", "short",
         [t(rate("azr_process_cpu_seconds_total"), "{{instance}}")])
    b.ts("Scrape up", "1 while Prometheus scrapes the azr metrics endpoint.", "short",
         [t('up{job=~"$job",instance=~"$instance"}', "{{instance}}")])
    b.row("Evaluation")
    b.ts("Evaluation accuracy", "Accuracy of the latest evaluation per benchmark.", "percentunit",
         [t(f"max by (benchmark) ({m('azr_eval_accuracy_ratio')})", "{{benchmark}}")],
         minmax=RATIO)
    b.ts("Evaluation lag", "Policy versions between the latest snapshot and the one evaluated.",
         "short", [t(f"scalar(max({m('azr_policy_version')})) - "
                     f"max by (benchmark) ({m('azr_eval_policy_version')})", "{{benchmark}}")])
    b.stat("Evaluations run", "Completed evaluations per benchmark since start.", "short",
           [t(f"sum by (benchmark) ({m('azr_eval_runs_total')})", "{{benchmark}}")], w=8, h=8)
    return b


BOARDS = {"overview": overview, "self-play": self_play, "learner": learner,
          "executor": executor, "system-health": system}


def render(build):
    return json.dumps(build().to_json(), indent=2) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="fail if a file is out of date")
    a = ap.parse_args()
    stale = []
    for name, build in BOARDS.items():
        path = OUT / f"{name}.json"
        text = render(build)
        if a.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            OUT.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("out of date (run python3 tools/gen_dashboards.py): " + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
