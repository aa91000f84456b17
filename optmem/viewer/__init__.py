"""The memory viewer: a static HTML page per conversation, its page images beside it.

``write_viewer(mem, out_dir)`` writes ``out_dir/index.html`` and ``out_dir/pages/*.png``; open the
HTML in any browser, no server needed.
"""

from optmem.viewer.render import page_count
from optmem.viewer.write import write_viewer

__all__ = ["page_count", "write_viewer"]
