#!/usr/bin/python3
# A WebKitGTK browser with storage that outlives it, for the one check
# WebKitWebDriver cannot make: under WebDriver, MiniBrowser runs with
# --automation and its storage is ephemeral (docs/BROWSERS.md), so a saved
# room can never survive a closed browser there. This is Debian's same
# WebKitGTK 2.50 (gir1.2-webkit2-4.1), driven from webkitgi.mjs over
# stdin/stdout, one JSON object per line:
#   {"id": n, "op": "goto", "url": U}            -> {"id": n, "ok": true} once loaded
#   {"id": n, "op": "eval", "body": B, "arg": A}  -> {"id": n, "ok": true, "value": V}
#       B is an async function body run in the page with `arg` bound to A
#       (JSON); V is what it returns (JSON).
#   {"id": n, "op": "quit"}                       -> the browser ends (its data stays)
# Usage: xvfb-run -a /usr/bin/python3 webkit-persist.py DATA_DIR [WIDTH HEIGHT]
import json
import os
import sys

import gi

gi.require_version('Gtk', '3.0')
gi.require_version('WebKit2', '4.1')
from gi.repository import GLib, Gtk, WebKit2  # noqa: E402

data = os.path.abspath(sys.argv[1])
width, height = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1280, 800)
manager = WebKit2.WebsiteDataManager(base_data_directory=os.path.join(data, 'data'),
                                     base_cache_directory=os.path.join(data, 'cache'))
context = WebKit2.WebContext.new_with_website_data_manager(manager)
view = WebKit2.WebView.new_with_context(context)
view.get_settings().set_enable_developer_extras(False)
window = Gtk.Window()
window.set_default_size(width, height)
window.add(view)
window.show_all()

pending_load = []


def reply(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def on_load(_view, event):
    if event == WebKit2.LoadEvent.FINISHED:
        while pending_load:
            reply({'id': pending_load.pop(0), 'ok': True})


view.connect('load-changed', on_load)


def run_eval(rid, body, arg):
    wrapped = 'const arg = JSON.parse(argJSON); const f = async () => { ' + body + ' }; return JSON.stringify(await f() ?? null);'
    args = GLib.Variant('a{sv}', {'argJSON': GLib.Variant('s', json.dumps(arg))})

    def done(v, res):
        try:
            value = v.call_async_javascript_function_finish(res)
            reply({'id': rid, 'ok': True, 'value': json.loads(value.to_string())})
        except GLib.Error as e:
            reply({'id': rid, 'ok': False, 'error': e.message})

    view.call_async_javascript_function(wrapped, -1, args, None, None, None, done)


def on_stdin(source, _cond):
    line = source.readline()
    if not line:
        Gtk.main_quit()
        return False
    msg = json.loads(line)
    op = msg.get('op')
    if op == 'goto':
        pending_load.append(msg['id'])
        view.load_uri(msg['url'])
    elif op == 'eval':
        run_eval(msg['id'], msg['body'], msg.get('arg'))
    elif op == 'quit':
        reply({'id': msg['id'], 'ok': True})
        Gtk.main_quit()
        return False
    return True


GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
Gtk.main()
