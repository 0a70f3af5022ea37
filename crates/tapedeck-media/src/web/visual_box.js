// The box a viewer sees for an element, in viewport coordinates. A plain text
// block (a heading or paragraph as wide as its column, with no background or
// border of its own) is boxed around its text; anything painted, interactive
// or replaced keeps its border box. Defines `visualBox` for the script it is
// put in front of.
const visualBox = (el) => {
  const r = el.getBoundingClientRect();
  if (el.matches('a, button, input, select, textarea, label, summary, img, video, canvas, svg, iframe, picture, object, embed, [role], [onclick], [tabindex], [contenteditable]')) return r;
  const cs = getComputedStyle(el);
  const border = ['Top', 'Right', 'Bottom', 'Left'].some((s) => parseFloat(cs['border' + s + 'Width']) > 0 && cs['border' + s + 'Style'] !== 'none');
  const fill = cs.backgroundImage !== 'none' || !/^(transparent|rgba\(.*,\s*0\))$/.test(cs.backgroundColor);
  if (border || fill || cs.boxShadow !== 'none') return r;
  const range = document.createRange();
  range.selectNodeContents(el);
  const t = range.getBoundingClientRect();
  const left = Math.max(r.left, t.left), top = Math.max(r.top, t.top);
  const right = Math.min(r.right, t.right), bottom = Math.min(r.bottom, t.bottom);
  if (right - left < 4 || bottom - top < 4) return r;
  return { left, top, width: right - left, height: bottom - top };
};
