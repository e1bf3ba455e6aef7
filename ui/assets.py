"""What the page adds to Gradio's own styles and scripts."""

from __future__ import annotations

import json

#: Result captions wrap onto their two lines (rank and score, then the file) instead of being cut;
#: face crops stay crop-sized (Gradio spreads fewer items than ``columns`` over the whole width).
CSS = """
#results .caption-label, #duplicates-gallery .caption-label { white-space: pre-line; max-width: calc(100% - 8px);
  line-height: 1.25; opacity: .92; }
#people .grid-container { grid-template-columns: repeat(auto-fill, minmax(120px, 170px)) !important; }
"""

#: The image types browsers may hand over without a MIME type, by extension.
TYPED = {"heic": "image/heic", "heif": "image/heif", "hif": "image/heif", "avif": "image/avif"}

#: Chromium on Linux gives ``IMG_1150.HEIC`` (as iPhones name photos) no MIME type, and Gradio's
#: image box, which accepts ``image/*``, refuses a file without one before it is sent ("Invalid
#: file type"). Picked or dropped, such a file is handed on with the type its extension names;
#: the server converts it for the preview and searches with the original. Listening in the
#: capture phase runs before Gradio's own handlers; a drop is dispatched again with the typed
#: files (a drop's own files cannot be replaced).
HEAD = """
<script>
(() => {
  const TYPES = __TYPES__;
  const typed = (file) => {
    const type = TYPES[(file.name.split(".").pop() || "").toLowerCase()];
    return !file.type && type ? new File([file], file.name, {type, lastModified: file.lastModified}) : file;
  };
  const retyped = (files) => {
    const list = [...(files || [])];
    if (!list.some((file) => typed(file) !== file)) return null;
    const transfer = new DataTransfer();
    list.forEach((file) => transfer.items.add(typed(file)));
    return transfer;
  };
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file") return;
    const transfer = retyped(input.files);
    if (transfer) input.files = transfer.files;
  }, true);
  document.addEventListener("drop", (event) => {
    if (event.retyped) return;
    const transfer = retyped(event.dataTransfer && event.dataTransfer.files);
    if (!transfer) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const again = new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true,
                                         clientX: event.clientX, clientY: event.clientY});
    again.retyped = true;
    event.target.dispatchEvent(again);
  }, true);
})();
</script>
""".replace("__TYPES__", json.dumps(TYPED))
