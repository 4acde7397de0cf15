# What the panel's screens say around the question's own text (buttons,
# thank-you, problems, the installer's screens), in each language the panel
# speaks. The question texts come from the host's catalogue; these are the
# panel's own. A language missing here, or a key missing in it, falls back
# to English.

CHROME = {
    "en": {"no_thanks": "No, thanks", "not_now": "Not now", "done": "Done", "thanks": "Thank you!",
           "thanks_answer": "Thank you for your answer!", "good_day": "Have a nice day!",
           "scan": "Scan to tell us more", "review": "Scan to leave a review",
           "yes": "Yes", "no": "No", "welcome": "Welcome!",
           "not_configured": "Not configured", "no_network": "No network",
           "broker_unreachable": "Cannot reach the store server",
           "service": "Service",
           "calibrate": "Touch the centre of the cross", "recalibrate": "Calibrate touch",
           # the service screen's rows
           "panel": "Panel", "store": "Store", "board": "Board", "ip": "IP",
           "broker": "Broker", "rssi": "RSSI", "fw": "Firmware", "outbox": "Outbox",
           "adverts": "Adverts", "problem": "Problem"},
    "ru": {"no_thanks": "Нет, спасибо", "not_now": "Не сейчас", "done": "Готово", "thanks": "Спасибо!",
           "thanks_answer": "Спасибо за ответ!", "good_day": "Хорошего дня!",
           "scan": "Отсканируйте, чтобы рассказать подробнее",
           "review": "Отсканируйте, чтобы оставить отзыв",
           "yes": "Да", "no": "Нет", "welcome": "Добро пожаловать!",
           "not_configured": "Панель не настроена", "no_network": "Нет сети",
           "broker_unreachable": "Нет связи с сервером магазина",
           "service": "Сервис",
           "calibrate": "Коснитесь центра крестика", "recalibrate": "Калибровка",
           "panel": "Панель", "store": "Магазин", "board": "Плата", "ip": "IP",
           "broker": "Сервер", "rssi": "Сигнал", "fw": "Прошивка", "outbox": "Очередь",
           "adverts": "Реклама", "problem": "Проблема"},
}


def chrome(lang, key):
    table = CHROME.get(lang) or CHROME["en"]
    return table.get(key) or CHROME["en"][key]
