"""The path the webhook task had before it moved beside the pipeline that queues it
(integrations.delivery.webhook_attempt). A queued task's row names the import path of its task
and the worker imports it from there, so rows queued by earlier releases still run."""

from integrations.delivery import webhook_attempt as webhook_attempt
