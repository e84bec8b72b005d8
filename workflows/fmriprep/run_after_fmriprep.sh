#!/usr/bin/env bash
# Run xaibids one step after fMRIPrep.
#
#   workflows/fmriprep/run_after_fmriprep.sh BIDS_DIR FMRIPREP_DIR OUTPUT_DIR [xaibids options...]
#
# BIDS_DIR      the raw dataset fMRIPrep ran on (participants.tsv holds the --target column)
# FMRIPREP_DIR  fMRIPrep's output folder (with its dataset_description.json); it needs BOLD in a
#               template space, e.g. fMRIPrep run with --output-spaces MNI152NLin6Asym:res-2
# OUTPUT_DIR    where xaibids writes its derivatives (not inside BIDS_DIR)
# Remaining arguments go to xaibids unchanged (e.g. --participant-label 01 --atlas aal).
# Set XAIBIDS to run another executable (e.g. "apptainer run --cleanenv xaibids.sif").
# Set LEVELS="participant group" to train and attribute after the extraction.
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,14p' "$0" >&2
  exit 2
fi
bids_dir=$1 fmriprep_dir=$2 output_dir=$3
shift 3
xaibids=${XAIBIDS:-xaibids}
for level in ${LEVELS:-participant}; do
  echo "xaibids: running the $level level on $fmriprep_dir" >&2
  $xaibids "$bids_dir" "$output_dir" "$level" -d "fmriprep=$fmriprep_dir" "$@"
done
