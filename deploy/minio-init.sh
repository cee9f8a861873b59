#!/bin/sh
# One-shot MinIO set-up: the AIP bucket with versioning and Object Lock (only possible at bucket
# creation), the access bucket with versioning, and a user for preserve that can use only them.
set -eu
mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"
mc mb --ignore-existing --with-lock local/preserve-aips
mc mb --ignore-existing --with-versioning local/preserve-access
mc version info local/preserve-aips | grep -q enabled
mc retention info local/preserve-aips >/dev/null  # fails when Object Lock is not enabled
cat > /tmp/preserve-policy.json <<POLICY
{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*"],
 "Resource": ["arn:aws:s3:::preserve-aips", "arn:aws:s3:::preserve-aips/*",
              "arn:aws:s3:::preserve-access", "arn:aws:s3:::preserve-access/*"]}]}
POLICY
mc admin policy create local preserve /tmp/preserve-policy.json 2>/dev/null || true
mc admin user add local "$PRESERVE_S3_ACCESS_KEY" "$PRESERVE_S3_SECRET_KEY"
mc admin policy attach local preserve --user "$PRESERVE_S3_ACCESS_KEY" 2>/dev/null || true
echo "minio ready: preserve-aips (versioning, Object Lock), preserve-access (versioning)"
