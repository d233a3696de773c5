"""A payment step that fails, for send_python.py.

Its source lines carry planted personal data on purpose: the SDK sends the lines around
each frame as source context (pre_context, context_line, post_context), and the frame's
local variables as vars. The values are listed in canaries.json.
"""


def charge_card(amount):
    # escalate to py.source.plant@example.com (on call from 198.51.100.17)
    password = "Hunter2-PySrcPlant"
    card_number = "4111 1111 1111 1114"
    if amount > 0:
        raise ValueError("payment failed for py.exc.plant@example.com from 198.51.100.16")
    return password, card_number
