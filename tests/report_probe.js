// Injected at the top of a copy of a report by tests/test_report.py (headless Chromium, --dump-dom):
// records console errors and failed loads, then after the page settles checks every <img>, the
// page width, the bokeh map (rendered; hovering a point shows a spectrogram thumbnail) and writes
// the findings as JSON into <pre id=browser-check>.
(() => {
  const errors = [];
  const original = console.error;
  console.error = (...args) => { errors.push(args.map(String).join(" ")); original.apply(console, args); };
  window.addEventListener("error", (e) => {
    const t = e.target;
    errors.push(t && t !== window ? `failed to load <${t.tagName}> ${String(t.src || t.href).slice(0, 60)}` : `${e.message}`);
  }, true);
  window.addEventListener("unhandledrejection", (e) => errors.push(`unhandled rejection: ${e.reason}`));

  function deep(root, selector, found = []) {  // querySelectorAll through open shadow roots (bokeh renders in them)
    for (const el of root.querySelectorAll("*")) {
      if (el.matches(selector)) found.push(el);
      if (el.shadowRoot) deep(el.shadowRoot, selector, found);
    }
    return found;
  }
  const frame = () => new Promise((r) => setTimeout(r, 100));

  function plotViews(view, out = []) {  // bokeh's views that have a frame (the plots)
    if (view.frame && view.renderer_views) out.push(view);
    for (const child of view.child_views || []) plotViews(child, out);
    return out;
  }

  async function hover() {  // move the pointer onto the map's first points until a tooltip shows a loaded spectrogram
    const target = deep(document, ".bk-events")[0];  // bokeh's hit area: it takes the pointer events itself
    const plot = Bokeh.index.roots.flatMap((root) => plotViews(root))[0];
    if (!target || !plot) return {tooltip: false, why: "no plot"};
    window.scrollTo(0, 0);  // bokeh places the pointer by pageX/Y, which synthetic events give as clientX/Y
    const box = target.getBoundingClientRect();
    const data = plot.model.renderers[0].data_source.data;
    for (let k = 0; k < Math.min(10, data.x.length); k++) {
      const x = box.left + plot.frame.x_scale.compute(data.x[k]), y = box.top + plot.frame.y_scale.compute(data.y[k]);
      for (const type of ["pointerover", "pointermove"]) {
        target.dispatchEvent(new PointerEvent(type, {clientX: x, clientY: y, bubbles: true, composed: true,
                                                     pointerType: "mouse", isPrimary: true}));
      }
      await frame();
      const img = deep(document, "img[alt=spectrogram]").find((im) => im.src.startsWith("data:image/png"));
      if (img) {
        await new Promise((r) => (img.complete ? r() : img.addEventListener("load", r)));
        return {tooltip: true, thumb_width: img.naturalWidth, text: img.parentElement.textContent.trim().slice(0, 200)};
      }
    }
    return {tooltip: false, why: "no tooltip with a spectrogram"};
  }

  async function recolour() {  // choose the second colouring as a user would: the points take its values
    const doc = Bokeh.documents[0];
    const select = [...doc.all_models].find((m) => m.title == "colour by" && Array.isArray(m.options));
    const data = Bokeh.index.roots.flatMap((root) => plotViews(root))[0].model.renderers[0].data_source;
    if (!select || select.options.length < 2) return "no colour selector";
    select.value = select.options[1];
    await frame();  // CustomJS callbacks run asynchronously
    return Array.from(data.data.value).every((v, i) => Object.is(v, data.data.v1[i]));
  }

  window.addEventListener("load", () => setTimeout(async () => {
    const images = Array.from(document.images);
    const root = document.documentElement;
    const result = {
      errors, images: images.length,
      broken: images.filter((im) => !(im.complete && im.naturalWidth > 0)).map((im) => im.alt || im.src.slice(0, 40)),
      scroll_width: root.scrollWidth, client_width: root.clientWidth,
      maps: document.querySelectorAll("[data-root-id]").length,
      viewport_height: window.innerHeight,
    };
    const answer = document.querySelector("#answer table");  // the answer's table: on the first screen?
    if (answer) result.answer_table_bottom = answer.getBoundingClientRect().bottom + window.scrollY;
    if (result.maps) {
      try { result.hover = await hover(); result.recolour = await recolour(); } catch (e) { errors.push(`probe: ${e}`); }
    }
    const pre = document.createElement("pre");
    pre.id = "browser-check";
    pre.style.whiteSpace = "pre-wrap";
    pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }, 500));
})();
