#!/usr/bin/env bash
# Mutation testing of the IP-safety code (issue 11, "the checks must be able to
# fail"): mutmut flips conditions, constants and calls in ipamd's claim, node,
# subnet and leader code and in the agent's pool, checkpoint and ADD/DEL path,
# and runs, per mutant, only the fast tests that reach the mutated function
# (setup.cfg [mutmut]: the unit tests of those modules and the model-based test
# tests/unit/test_model_ipam.py, here in a short setting). A mutant that no
# test notices "survives"; the report lists each with its diff.
#
#   hack/mutation.sh                    # the safety-critical functions (default set)
#   hack/mutation.sh 'cni.agent.pool.*' # mutmut name globs: any subset
#   MUTATION_ALL=1 hack/mutation.sh     # every function of the listed files (hours)
#   MUTATION_JOBS=4 hack/mutation.sh    # parallel mutants (default: 2)
#
# Results stay in mutants/ (git-ignored); a re-run only runs mutants that were not
# run yet or whose code or tests changed. `.venv/bin/mutmut show <name>` prints a
# mutant's diff; `.venv/bin/mutmut browse` is the interactive view.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
MUTMUT=.venv/bin/mutmut
if [ ! -x "$MUTMUT" ]; then
    echo "mutmut is not installed: run hack/setup.sh (installs the 'mutation' extra)" >&2
    exit 2
fi

# the model-based test in a short setting: each mutant it covers runs it once
export MODEL_IPAM_EXAMPLES="${MODEL_IPAM_EXAMPLES:-6}"
export MODEL_IPAM_STEPS="${MODEL_IPAM_STEPS:-25}"

# The conditions the issue's manual mutation run found unguarded, and the rest of
# the release handshake, claim moves, subnet decisions, leader lifecycle, pool,
# checkpoint and ADD/DEL path.
DEFAULT=(
    'ipamd.controllers.nodes.xǁNodeControllerǁfinish_releases__*'
    'ipamd.controllers.nodes.xǁNodeControllerǁrequest_release__*'
    'ipamd.controllers.nodes.xǁNodeControllerǁdrain__*'
    'ipamd.controllers.nodes.xǁNodeControllerǁsync__*'
    'ipamd.controllers.nodes.xǁNodeControllerǁdelete_empty_enis__*'
    'ipamd.controllers.claimctl.xǁClaimControllerǁrelease__*'
    'ipamd.controllers.claimctl.xǁClaimControllerǁmigrate__*'
    'ipamd.controllers.claimctl.xǁClaimControllerǁallocate__*'
    'ipamd.controllers.claimctl.xǁClaimControllerǁreserve_for_pod__*'
    'ipamd.controllers.subnetctl.xǁSubnetControllerǁsync__*'
    'ipamd.leader.*'
    'cni.agent.pool.x_choose_dynamic__*'
    'cni.agent.pool.x_choose_static__*'
    'cni.agent.pool.x_release__*'
    'cni.agent.pool.x_grant_releases__*'
    'cni.agent.checkpoint.*'
    'cni.agent.agent.xǁAgentǁadd__*'
    'cni.agent.agent.xǁAgentǁdelete__*'
    'cni.agent.agent.xǁAgentǁ_teardown__*'
    'cni.agent.agent.xǁAgentǁ_undo__*'
)
if [ "$#" -gt 0 ]; then
    names=("$@")
elif [ -n "${MUTATION_ALL:-}" ]; then
    names=()
else
    names=("${DEFAULT[@]}")
fi

start=$(date +%s)
"$MUTMUT" run --max-children "${MUTATION_JOBS:-2}" "${names[@]}" >/dev/null || true
echo "mutmut ran in $(($(date +%s) - start))s"
"$PY" hack/mutation_report.py "${names[@]}"
