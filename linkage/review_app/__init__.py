"""The analysts' review application (`linkage serve`): the queue, the evidence for a pair
or a person, and decisions that the next link stage obeys.

`app` builds the FastAPI application and its pages; `context` reads the project once;
`permissions` decides what a reviewer may see; `queue` and `evidence` read the warehouse;
`weights` and `graph` turn stored figures into Splink's waterfall and a cluster drawing;
`accounts` and `sessions` sign reviewers in.
"""

from linkage.review_app.app import create_app
from linkage.review_app.context import ReviewContext
from linkage.review_app.server import serve

__all__ = ["ReviewContext", "create_app", "serve"]
