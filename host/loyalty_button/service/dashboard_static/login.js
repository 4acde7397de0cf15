// The log-in page's words, in the page's language (i18n.js): a file, not
// inline, so the dashboard's Content-Security-Policy allows no inline script.
"use strict";
translatePage();
