# What the panel's screens say around the question's own text (buttons,
# thank-you, problems, the installer's screens), in each language the panel
# speaks. The question texts come from the host's catalogue; these are the
# panel's own. A language missing here, or a key missing in it, falls back
# to English.

CHROME = {
    "en": {"no_thanks": "No, thanks", "done": "Done", "thanks": "Thank you!",
           "scan": "Scan to tell us more", "review": "Scan to leave a review",
           "yes": "Yes", "no": "No", "welcome": "Welcome!",
           "not_configured": "Not configured", "no_network": "No network",
           "broker_unreachable": "Cannot reach the store server",
           "service": "Service", "hint": "Installer: hold the top-left corner",
           "calibrate": "Touch the centre of the cross", "recalibrate": "Calibrate touch",
           # the service screen's rows
           "panel": "Panel", "store": "Store", "board": "Board", "ip": "IP",
           "broker": "Broker", "rssi": "RSSI", "fw": "Firmware", "outbox": "Outbox",
           "adverts": "Adverts"},
    "ru": {"no_thanks": "Нет, спасибо", "done": "Готово", "thanks": "Спасибо!",
           "scan": "Отсканируйте, чтобы рассказать подробнее",
           "review": "Отсканируйте, чтобы оставить отзыв",
           "yes": "Да", "no": "Нет", "welcome": "Добро пожаловать!",
           "not_configured": "Панель не настроена", "no_network": "Нет сети",
           "broker_unreachable": "Нет связи с сервером магазина",
           "service": "Сервис", "hint": "Установщику: удерживайте левый верхний угол",
           "calibrate": "Коснитесь центра крестика", "recalibrate": "Калибровка",
           "panel": "Панель", "store": "Магазин", "board": "Плата", "ip": "IP",
           "broker": "Сервер", "rssi": "Сигнал", "fw": "Прошивка", "outbox": "Очередь",
           "adverts": "Реклама"},
}


def chrome(lang, key):
    table = CHROME.get(lang) or CHROME["en"]
    return table.get(key) or CHROME["en"][key]
