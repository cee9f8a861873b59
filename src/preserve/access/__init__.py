"""Access copies: `proxy` (H.264/AAC MP4 and the poster; argv builders kept pure), `contactsheet`,
`scrub` (the privacy post-check: nothing identifying may survive into an access file), and
`policy` (which access level applies today and where each level's copies are stored). Nothing
here publishes: the pipeline's publish step and `operations` store the copies."""
