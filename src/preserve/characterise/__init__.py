"""Characterisation, the second stage: what each original is and whether it is sound. `identify`
(PRONOM format by fido, cross-checked with MediaInfo and ffprobe), `decode` (the full decode
check, errors counted), `transcode` (one ffmpeg run per original: decode verdict, framemd5 and
the access copies from a single decode), `normalise` (FFV1/Matroska preservation masters under the policy, kept
only with a framemd5 proof that they are lossless). The tools themselves are in `preserve.tools`;
findings are values, and the pipeline records them as events."""
