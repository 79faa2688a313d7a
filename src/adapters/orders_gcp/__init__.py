"""orders-core on Google Cloud: Firestore as the store, Pub/Sub as the bus, Cloud Run in front.

One module a job, none imported by ``import orders_gcp`` (the SDKs load only when used):

- :mod:`orders_gcp.firestore`: the store and its outbox (:func:`~orders_gcp.firestore.backend`
  is the ``firestore`` backend of ``orders_local.backends``); :mod:`orders_gcp.documents`
  holds the document layout, :mod:`orders_gcp.calls` the one place Firestore's errors become
  the core's.
- :mod:`orders_gcp.binding`: CloudEvents <-> Pub/Sub messages (the CloudEvents Pub/Sub
  protocol binding); :mod:`orders_gcp.pubsub`: the publisher the core's relay drives.
- :mod:`orders_gcp.push`, :mod:`orders_gcp.push_auth`, :mod:`orders_gcp.push_app`: Pub/Sub
  push (plain and Eventarc) into the core's dispatcher rule, authenticated by its OIDC token.
- :mod:`orders_gcp.cloud_logging`: the JSON line shape Cloud Logging reads (opt-in).
- :mod:`orders_gcp.cloud_run`: the composition root a Cloud Run container starts.

Install with the ``gcp`` extra (google-cloud-firestore, google-cloud-pubsub). Design:
docs/decisions/0018-google-cloud-firestore-and-push.md.
"""
