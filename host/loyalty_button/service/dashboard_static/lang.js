// The page's language and its words (the store's dashboard and the chain's):
// STRINGS comes from the page's own i18n.js, loaded before this file. The
// language is the one picked (kept in this browser), else the browser's
// own; a key missing in a language falls back to English.
"use strict";
function pickLang() {
  const saved = localStorage.getItem("lb-lang");
  if (saved && STRINGS[saved]) return saved;
  const wanted = (navigator.languages || [navigator.language || "en"]);
  for (const l of wanted) {
    const base = String(l).slice(0, 2).toLowerCase();
    if (STRINGS[base]) return base;
  }
  return "en";
}

let LANG = pickLang();

function t(key, params) {
  let text = (STRINGS[LANG] && STRINGS[LANG][key]);
  if (text === undefined) text = STRINGS.en[key];
  if (text === undefined) return key;
  return text.replace(/\{(\w+)\}/g, (m, name) =>
    params && params[name] !== undefined && params[name] !== null ? String(params[name]) : "");
}

// The static page's words: every element with data-i18n="key".
function translatePage() {
  document.documentElement.lang = LANG;
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll("#langs button")) b.classList.toggle("on", b.dataset.lang === LANG);
}
