#!/usr/bin/env bash
# The nightly history on a git branch of its own, where it never expires (the actions cache evicts
# an entry unused for 7 days and caps a repository's total).
#
#   scripts/history_branch.sh pull DIR SUBDIR   # DIR := the branch's SUBDIR (left as is if the branch
#                                               #        or the folder does not exist yet)
#   scripts/history_branch.sh push DIR SUBDIR "message"   # the branch's SUBDIR := DIR, one commit
#
# Run inside a clone whose remote (NORMBENCH_HISTORY_REMOTE, default origin) may be pushed to. The
# branch (NORMBENCH_HISTORY_BRANCH, default normbench-history) holds only history folders, one per
# SUBDIR (history/, history-deploy-bench/); it is started as an orphan by the first push. Two jobs
# pushing at once each change only their own SUBDIR: a rejected push fetches the branch again,
# copies its folder onto the new tip and retries, so neither overwrites the other's night.
# GitHub refuses a file over 100 MB, and a history grows past that (400 nights of a full sweep): a
# file over NORMBENCH_HISTORY_PART_BYTES (default 40 MB) goes on the branch as NAME.part-000,
# NAME.part-001, ... (split at line ends) and a pull joins them back into NAME.
set -euo pipefail
BRANCH=${NORMBENCH_HISTORY_BRANCH:-normbench-history}
REMOTE=${NORMBENCH_HISTORY_REMOTE:-origin}
PART_BYTES=${NORMBENCH_HISTORY_PART_BYTES:-40000000}
cmd=${1:?usage: history_branch.sh pull|push DIR SUBDIR [message]}
dir=${2:?DIR}
sub=${3:?SUBDIR}

fetch() { git fetch -q --depth=1 "$REMOTE" "refs/heads/$BRANCH" 2>/dev/null; }

case "$cmd" in
  pull)
    if ! fetch; then
      echo "history_branch: no branch $BRANCH on $REMOTE yet; $dir is left as it is (the first push starts it)"
      exit 0
    fi
    if ! git cat-file -e "FETCH_HEAD:$sub" 2>/dev/null; then
      echo "history_branch: $BRANCH has no $sub/ yet; $dir is left as it is"
      exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    git archive FETCH_HEAD "$sub" | tar -x -C "$dir" --strip-components=1
    for first in "$dir"/*.part-000; do   # a file that was split on push
      [ -e "$first" ] || continue
      whole=${first%.part-000}
      cat "$whole".part-* > "$whole"
      rm -f "$whole".part-*
    done
    echo "history_branch: $dir from $BRANCH ($(git rev-parse --short FETCH_HEAD))"
    ;;
  push)
    message=${4:-"history: $sub"}
    [ -d "$dir" ] || { echo "history_branch: no $dir to push" >&2; exit 1; }
    work=$(mktemp -d)
    trap 'git worktree remove --force "$work/tree" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    for attempt in 1 2 3 4 5; do
      git worktree remove --force "$work/tree" >/dev/null 2>&1 || rm -rf "$work/tree"
      if fetch; then
        git worktree add -q --detach "$work/tree" FETCH_HEAD
      else   # the first night: an orphan branch with nothing but history folders
        git worktree add -q --detach "$work/tree"
        git -C "$work/tree" checkout -q --orphan "$BRANCH"
        git -C "$work/tree" rm -rfq . >/dev/null 2>&1 || true
      fi
      rm -rf "${work:?}/tree/$sub"
      mkdir -p "$work/tree/$sub"
      cp -a "$dir/." "$work/tree/$sub/"
      rm -f "$work/tree/$sub/.history.lock"
      for file in "$work/tree/$sub"/*; do
        if [ -f "$file" ] && [ "$(stat -c %s "$file")" -gt "$PART_BYTES" ]; then
          split --line-bytes="$PART_BYTES" --numeric-suffixes --suffix-length=3 "$file" "$file.part-"
          rm "$file"
        fi
      done
      git -C "$work/tree" add -A "$sub"
      if git -C "$work/tree" diff --cached --quiet 2>/dev/null && git -C "$work/tree" rev-parse -q --verify HEAD >/dev/null; then
        echo "history_branch: $sub unchanged; nothing to push"
        exit 0
      fi
      git -C "$work/tree" -c user.name="github-actions[bot]" \
        -c user.email="41898282+github-actions[bot]@users.noreply.github.com" commit -q -m "$message"
      if git -C "$work/tree" push -q "$REMOTE" "HEAD:refs/heads/$BRANCH"; then
        echo "history_branch: $sub pushed to $BRANCH ($(git -C "$work/tree" rev-parse --short HEAD))"
        exit 0
      fi
      echo "history_branch: push $attempt rejected (another job pushed first); fetching again" >&2
      sleep $((attempt * 3))
    done
    echo "history_branch: could not push $sub to $BRANCH after 5 attempts" >&2
    exit 1
    ;;
  *)
    echo "history_branch: unknown command $cmd (pull or push)" >&2
    exit 2
    ;;
esac
