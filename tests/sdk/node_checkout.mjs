// A payment step that fails, for send_node.mjs.
//
// Its source lines carry planted personal data on purpose: the SDK sends the lines around
// each frame as source context (pre_context, context_line, post_context). The values are
// listed in canaries.json.

export function chargeCard(amount) {
  // escalate to js.source.plant@example.com (on call from 198.51.100.45)
  const password = "Hunter2-JsSrcPlant";
  const cardNumber = "4111 1111 1111 1124";
  if (amount > 0) {
    throw new Error("payment failed for js.exc.plant@example.com from 198.51.100.44");
  }
  return [password, cardNumber];
}
