"""The pocket command room (掌上指挥室, ``/m``): the installable, offline-capable phone web app for
grid workers (report, verify, evacuate) and commanders (warnings, alarms, dispatch).

The pages are one server-rendered shell; the page script reads the JSON API, and every report
or status change goes through an IndexedDB queue carrying its idempotency key, so that what was
done without signal is sent once when the signal returns (``static/m/queue.js``)."""
