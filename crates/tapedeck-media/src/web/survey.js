// Finds a page's key elements for auto tours and templates. Runs in the page;
// returns plain data (tapedeck_core::tour::Survey). Uses `visualBox`
// (visual_box.js), put in front of it by the recorder.
(() => {
  const se = document.scrollingElement || document.documentElement;
  const out = {
    viewport_w: innerWidth,
    viewport_h: innerHeight,
    scroll_height: Math.max(se ? se.scrollHeight : 0, document.body ? document.body.scrollHeight : 0, innerHeight),
    elements: [],
  };
  const seen = new Set();
  const selectorOf = (el) => {
    if (el.id && document.querySelectorAll('#' + CSS.escape(el.id)).length === 1) return '#' + CSS.escape(el.id);
    const parts = [];
    let node = el;
    while (node && node.nodeType === 1 && node !== document.documentElement) {
      if (node.id && document.querySelectorAll('#' + CSS.escape(node.id)).length === 1) {
        parts.unshift('#' + CSS.escape(node.id));
        break;
      }
      let i = 1;
      for (let s = node.previousElementSibling; s; s = s.previousElementSibling) if (s.tagName === node.tagName) i++;
      parts.unshift(node.tagName.toLowerCase() + ':nth-of-type(' + i + ')');
      node = node.parentElement;
    }
    return parts.join(' > ');
  };
  const visible = (el, r) => {
    if (r.width < 4 || r.height < 4) return false;
    const cs = getComputedStyle(el);
    return cs.visibility !== 'hidden' && cs.display !== 'none' && Number(cs.opacity) > 0.05;
  };
  const add = (el, kind, level) => {
    if (seen.has(el) || out.elements.length >= 200) return;
    if (!visible(el, el.getBoundingClientRect())) return;
    const r = visualBox(el);
    seen.add(el);
    out.elements.push({
      kind, level: level || 0,
      selector: selectorOf(el),
      text: (el.innerText || el.getAttribute('aria-label') || el.getAttribute('alt') || '').trim().replace(/\s+/g, ' ').slice(0, 80),
      rect: { x: r.left + scrollX, y: r.top + scrollY, w: r.width, h: r.height },
    });
  };
  document.querySelectorAll('h1, h2, h3').forEach((el) => {
    if ((el.innerText || '').trim()) add(el, 'heading', Number(el.tagName[1]));
  });
  document.querySelectorAll('button, [role=button], input[type=submit], a[class*=btn], a[class*=button], a[class*=cta], .cta').forEach((el) => add(el, 'cta'));
  document.querySelectorAll('nav, [role=navigation]').forEach((el) => add(el, 'nav'));
  document.querySelectorAll('form, input:not([type=hidden]):not([type=submit]), textarea, select').forEach((el) => add(el, 'form'));
  document.querySelectorAll('img, video, picture, svg').forEach((el) => {
    const r = el.getBoundingClientRect();
    if (r.width * r.height >= 20000) add(el, 'image');
  });
  out.elements.sort((a, b) => a.rect.y - b.rect.y || a.rect.x - b.rect.x);
  return out;
})()
