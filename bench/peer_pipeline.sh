#!/usr/bin/env bash
# The peer pipeline: what a team would glue together by hand from bagit-python, ffmpeg and a
# boto3 upload (the aws CLI is not installed here), run one after another on one film. The
# benchmark (python -m bench) times it against preserve's ingest of the same clip.
#
#   bench/peer_pipeline.sh CLIP WORKDIR ENDPOINT BUCKET PREFIX
#
# S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY. Set PYTHON and BAGIT to pick
# the interpreter with boto3 and the bagit.py script. Prints one line per phase,
# "phase NAME SECONDS", so the benchmark can also read the bare ffmpeg time. WORKDIR is emptied.
set -euo pipefail
clip=$1 work=$2 endpoint=$3 bucket=$4 prefix=$5
PY=${PYTHON:-python3}
BAGIT=${BAGIT:-bagit.py}
now() { date +%s.%N; }
phase() { awk -v a="$2" -v b="$(now)" -v n="$1" 'BEGIN { printf "phase %s %.3f\n", n, b - a }'; }

rm -rf "$work"
mkdir -p "$work/bag"

# 1. bag a copy (bagit.py moves files in place, so the source must be copied first)
t=$(now)
cp "$clip" "$work/bag/"
"$BAGIT" --quiet --sha256 --sha512 "$work/bag"
phase bagit "$t"

# 2. the access proxy: the same H.264/AAC settings as preserve's (veryfast, CRF 23, <=1080 lines)
t=$(now)
ffmpeg -nostdin -hide_banner -v error -y -i "$clip" -map 0:v:0 -map '0:a:0?' \
  -vf "scale=w='max(2,trunc(oh*dar/2)*2)':h='max(2,trunc(min(ih,1080)/2)*2)',setsar=1" \
  -c:v libx264 -preset veryfast -crf 23 -pix_fmt yuv420p -c:a aac -b:a 128k -ac 2 \
  -map_metadata -1 -movflags +faststart -f mp4 "$work/proxy.mp4"
phase ffmpeg "$t"

# 3. upload the bag and the proxy with boto3's defaults
t=$(now)
"$PY" -c '
import os, sys, boto3
work, endpoint, bucket, prefix = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
for root, _, files in os.walk(os.path.join(work, "bag")):
    for name in files:
        path = os.path.join(root, name)
        s3.upload_file(path, bucket, prefix + "/" + os.path.relpath(path, work))
s3.upload_file(os.path.join(work, "proxy.mp4"), bucket, prefix + "/proxy.mp4")
' "$work" "$endpoint" "$bucket" "$prefix"
phase upload "$t"
