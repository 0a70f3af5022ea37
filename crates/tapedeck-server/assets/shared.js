// The public viewer of a share link, /s/ID?exp=&sig=: that one recording
// (its title, player, download) and nothing else; no sign-in.
"use strict";

const $ = (id) => document.getElementById(id);
const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const signed = new URLSearchParams(location.search);
const query = "exp=" + encodeURIComponent(signed.get("exp") || "") + "&sig=" + encodeURIComponent(signed.get("sig") || "");

(async () => {
  const r = await fetch(`/v1/shared/${encodeURIComponent(id)}/info?${query}`);
  let body = null;
  try { body = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) { Words.show($("shared-error"), Words.fail(r.status, body)); return; }
  document.title = (body.title || "Recording") + " · tapedeck";
  $("shared-title").textContent = body.title || "Recording";
  const m = body.duration_s ? Math.floor(body.duration_s / 60) + ":" + String(Math.round(body.duration_s % 60)).padStart(2, "0") : "";
  $("shared-sub").textContent = [new Date(body.created_at).toLocaleString(), m].filter(Boolean).join(" · ");
  $("shared-until").textContent = new Date(body.expires_at).toLocaleString();
  $("shared-video").src = `/v1/shared/${encodeURIComponent(id)}?${query}`;
  $("shared-download").href = `/v1/shared/${encodeURIComponent(id)}?${query}&download=1`;
  $("shared").hidden = false;
})();
