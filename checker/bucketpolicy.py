"""The bucket policy that splits the upload host's rights from the checker's. Pure: names in, JSON out.

The CDN serves `metadata/` and `releases/` to everyone, so whoever can write
there publishes firmware. The upload host's credentials (the fsgateway mount
under `incoming/`) must therefore write nothing but the upload area and the
mount's own reserved keys; only the checker's credentials (the bucket owner,
or a user granted everything) write releases, metadata and quarantine. The
grant is an Allow, and the same actions anywhere else are an explicit Deny for
that principal, which also holds where the uploader's key belongs to an
account that has other rights on the bucket.
"""

from __future__ import annotations

from fsgateway.formats import reserved

from . import rules, tufrepo

#: What the mount does to objects (multipart uploads for large files, the staging copy, deletes, renames).
UPLOADER_WRITES = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


def upload_areas(prefix: str) -> list[str]:
    """Key patterns the upload host may write: the pipeline's incoming/, the mount's staging and feed."""
    return [f"{prefix}{rules.INCOMING}*", f"{reserved.mount_staging()}*", f"{reserved.feed()}*"]


def policy(bucket: str, prefix: str, uploaders: list[str], checkers: list[str], public_read: bool = True) -> dict:
    """The policy document; principals are ARNs (RGW, Linode: `arn:aws:iam:::user/<id>`).

    The checkers are granted every object explicitly: on RGW an object belongs
    to the user who wrote it, so without this the bucket owner could not read
    or remove what the upload host wrote.
    """
    obj = f"arn:aws:s3:::{bucket}/"
    principal = {"AWS": uploaders}
    statements: list[dict] = [
        {"Sid": "fsgateway-checker", "Effect": "Allow", "Principal": {"AWS": checkers}, "Action": ["s3:*"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"{obj}*"]}]
    if public_read:
        statements.append({"Sid": "fsgateway-cdn-origin", "Effect": "Allow", "Principal": "*",
                           "Action": ["s3:GetObject"],
                           "Resource": [f"{obj}{prefix}{tufrepo.METADATA}*", f"{obj}{prefix}{tufrepo.RELEASES}*"]})
    areas = [obj + area for area in upload_areas(prefix)]
    statements += [
        {"Sid": "fsgateway-uploader-list", "Effect": "Allow", "Principal": principal,
         "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"], "Resource": [f"arn:aws:s3:::{bucket}"]},
        {"Sid": "fsgateway-uploader-read", "Effect": "Allow", "Principal": principal,
         "Action": ["s3:GetObject"], "Resource": [f"{obj}*"]},
        {"Sid": "fsgateway-uploader-write", "Effect": "Allow", "Principal": principal,
         "Action": UPLOADER_WRITES, "Resource": areas},
        {"Sid": "fsgateway-uploader-nothing-else", "Effect": "Deny", "Principal": principal,
         "Action": UPLOADER_WRITES, "NotResource": areas},
        {"Sid": "fsgateway-uploader-no-admin", "Effect": "Deny", "Principal": principal,
         "Action": ["s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:PutBucketAcl", "s3:PutObjectAcl",
                    "s3:DeleteBucket", "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning"],
         "Resource": [f"arn:aws:s3:::{bucket}", f"{obj}*"]},
    ]
    return {"Version": "2012-10-17", "Statement": statements}
