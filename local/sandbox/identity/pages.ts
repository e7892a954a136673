import { entraTimestamp, type AadstsError, type ErrorIds } from './aadsts.js';

/**
 * The pages a person's browser sees: pick an account, consent, "Need admin approval", admin
 * consent, the device code entry, errors, and the auto-submitting form of `response_mode=form_post`.
 * Plain, accessible HTML (one h1, labelled controls, real buttons, no script except form_post's
 * auto-submit, no external assets), with a banner so nobody mistakes the sandbox for Microsoft.
 * Every value is escaped; forms post back with the interaction id (`ctx`) and an `action`.
 */

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
}

const STYLE = `
body{font-family:"Segoe UI",system-ui,sans-serif;background:#f2f2f2;color:#1b1b1b;margin:0}
.banner{background:#5c2d91;color:#fff;padding:.4rem 1rem;font-size:.85rem}
main{max-width:30rem;margin:2rem auto;background:#fff;padding:2rem;box-shadow:0 2px 6px rgba(0,0,0,.2)}
h1{font-size:1.5rem;font-weight:600;margin:0 0 1rem}
ul.accounts{list-style:none;padding:0;margin:0 0 1rem}
ul.accounts button{width:100%;text-align:left;background:none;border:1px solid #ccc;padding:.6rem;margin:.2rem 0;font:inherit;cursor:pointer}
ul.accounts button:hover,ul.accounts button:focus{background:#e6f2fb;outline:2px solid #0067b8}
.hint{border-color:#0067b8!important}
.secondary{color:#616161;font-size:.9rem}
.actions{display:flex;gap:.5rem;justify-content:flex-end;margin-top:1.5rem}
.actions button,.link-button{font:inherit;padding:.4rem 1.2rem;border:1px solid #8a8886;background:#fff;cursor:pointer}
.actions button.primary{background:#0067b8;border-color:#0067b8;color:#fff}
.link-button{border:none;padding:0;color:#0067b8;text-decoration:underline;background:none}
.error-details{font-family:Consolas,monospace;font-size:.8rem;background:#f8f8f8;padding:.6rem;white-space:pre-wrap;word-break:break-all}
label{display:block;margin:.8rem 0}
input[type=text]{font:inherit;padding:.4rem;width:100%;box-sizing:border-box}
`;

function layout(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body>
<div class="banner" role="note">Sandbox Microsoft identity platform: local test accounts, no real sign-in.</div>
<main>
${body}
</main>
</body>
</html>`;
}

function hidden(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join('\n');
}

export interface AccountChoice {
  id: string;
  userPrincipalName: string;
  displayName: string;
  tenantName: string;
  isAdmin: boolean;
}

export function pickAccountPage(input: { action: string; ctx: string; appName: string; accounts: AccountChoice[]; loginHint?: string }): string {
  const hint = input.loginHint?.toLowerCase();
  const items = input.accounts
    .map((a) => {
      const role = a.isAdmin ? ' · administrator' : '';
      const hinted = a.userPrincipalName.toLowerCase() === hint ? ' class="hint" autofocus' : '';
      return `<li><button type="submit" name="user" value="${escapeHtml(a.id)}"${hinted}>${escapeHtml(a.displayName)}<br><span class="secondary">${escapeHtml(a.userPrincipalName)} · ${escapeHtml(a.tenantName)}${role}</span></button></li>`;
    })
    .join('\n');
  const list = input.accounts.length > 0 ? `<ul class="accounts">${items}</ul>` : '<p>No sandbox accounts can sign in here. Create a tenant and users through the control API first.</p>';
  return layout(
    'Sign in to your account',
    `<h1>Pick an account</h1>
<p>to continue to ${escapeHtml(input.appName)}</p>
<form method="post" action="${escapeHtml(input.action)}">
${hidden({ ctx: input.ctx, step: 'pick-account' })}
${list}
</form>`,
  );
}

export interface PermissionLine {
  words: string;
  scope: string;
}

function permissionList(permissions: PermissionLine[]): string {
  return `<ul>${permissions.map((p) => `<li>${escapeHtml(p.words)} <span class="secondary">(${escapeHtml(p.scope)})</span></li>`).join('')}</ul>`;
}

export function consentPage(input: {
  action: string;
  ctx: string;
  appName: string;
  account: string;
  permissions: PermissionLine[];
  canConsentForOrganization: boolean;
}): string {
  const orgChoice = input.canConsentForOrganization
    ? `<label><input type="checkbox" name="consent_on_behalf_of_organization" value="true"> Consent on behalf of your organization</label>`
    : '';
  return layout(
    'Permissions requested',
    `<h1>Permissions requested</h1>
<p><strong>${escapeHtml(input.appName)}</strong><br><span class="secondary">unverified · signed in as ${escapeHtml(input.account)}</span></p>
<p>This app would like to:</p>
${permissionList(input.permissions)}
<form method="post" action="${escapeHtml(input.action)}">
${hidden({ ctx: input.ctx, step: 'consent' })}
${orgChoice}
<p class="secondary">Accepting these permissions means that you allow this app to use your data as specified in their terms of service and privacy statement.</p>
<div class="actions"><button type="submit" name="decision" value="cancel">Cancel</button><button type="submit" name="decision" value="accept" class="primary">Accept</button></div>
</form>`,
  );
}

export function adminConsentPage(input: {
  action: string;
  ctx: string;
  appName: string;
  account: string;
  tenantName: string;
  delegated: PermissionLine[];
  appRoles: PermissionLine[];
}): string {
  const delegated = input.delegated.length > 0 ? `<h2>On behalf of signed-in users</h2>${permissionList(input.delegated)}` : '';
  const roles = input.appRoles.length > 0 ? `<h2>As the app itself, with no signed-in user</h2>${permissionList(input.appRoles)}` : '';
  return layout(
    'Permissions requested',
    `<h1>Permissions requested</h1>
<p><strong>${escapeHtml(input.appName)}</strong><br><span class="secondary">unverified · Accept for your organization (${escapeHtml(input.tenantName)}) · signed in as ${escapeHtml(input.account)}</span></p>
<p>This app would like to:</p>
${delegated}
${roles}
<form method="post" action="${escapeHtml(input.action)}">
${hidden({ ctx: input.ctx, step: 'admin-consent' })}
<p class="secondary">If you accept, this app will get access to the specified resources for all users in your organization. No one else will be prompted to review these permissions.</p>
<div class="actions"><button type="submit" name="decision" value="cancel">Cancel</button><button type="submit" name="decision" value="accept" class="primary">Accept</button></div>
</form>`,
  );
}

function errorDetails(error: AadstsError, ids: ErrorIds): string {
  return `<p class="error-details">Request Id: ${escapeHtml(ids.traceId)}
Correlation Id: ${escapeHtml(ids.correlationId)}
Timestamp: ${escapeHtml(entraTimestamp(ids.now))}
Message: ${escapeHtml(error.message)}</p>`;
}

/** Entra's interrupt when the signed-in user may not grant what the app asks for. */
export function needAdminApprovalPage(input: { action: string; ctx: string; appName: string; account: string; error: AadstsError; ids: ErrorIds }): string {
  return layout(
    'Need admin approval',
    `<h1>Need admin approval</h1>
<p><strong>${escapeHtml(input.appName)}</strong></p>
<p>${escapeHtml(input.appName)} needs permission to access resources in your organization that only an admin can grant. Please ask an admin to grant permission to this app before you can use it.</p>
<p class="secondary">Signed in as ${escapeHtml(input.account)}</p>
<form method="post" action="${escapeHtml(input.action)}">
${hidden({ ctx: input.ctx, step: 'need-admin' })}
<p><button type="submit" name="decision" value="switch-account" class="link-button">Have an admin account? Sign in with that account</button></p>
<p><button type="submit" name="decision" value="return" class="link-button">Return to the application without granting consent</button></p>
</form>
${errorDetails(input.error, input.ids)}`,
  );
}

export function errorPage(input: { heading: string; explanation: string; error: AadstsError; ids: ErrorIds }): string {
  return layout(
    'Sign in',
    `<h1>${escapeHtml(input.heading)}</h1>
<p>${escapeHtml(input.explanation)}</p>
${errorDetails(input.error, input.ids)}`,
  );
}

/** What Entra sends for `response_mode=form_post`: a form the page's script submits at once. */
export function formPostPage(action: string, fields: Record<string, string>): string {
  return `<html><head><title>Working...</title></head><body><form method="POST" name="hiddenform" action="${escapeHtml(action)}">${hidden(fields)}<noscript><p>Script is disabled. Click Submit to continue.</p><input type="submit" value="Submit"></noscript></form><script>document.forms[0].submit();</script></body></html>`;
}

export function deviceCodeEntryPage(input: { action: string; problem?: string }): string {
  const problem = input.problem === undefined ? '' : `<p role="alert"><strong>${escapeHtml(input.problem)}</strong></p>`;
  return layout(
    'Enter code',
    `<h1>Enter code</h1>
<p>Enter the code displayed on your app or device.</p>
${problem}
<form method="post" action="${escapeHtml(input.action)}">
<label for="otc">Code</label>
<input type="text" id="otc" name="otc" autocomplete="off" autofocus required>
<div class="actions"><button type="submit" class="primary">Next</button></div>
</form>`,
  );
}

export function deviceCodeDonePage(input: { appName: string; approved: boolean }): string {
  const message = input.approved
    ? `You have signed in to the ${input.appName} application on your device. You may now close this window.`
    : `You have declined to sign in to the ${input.appName} application on your device. You may now close this window.`;
  return layout(input.appName, `<h1>${escapeHtml(input.appName)}</h1>\n<p>${escapeHtml(message)}</p>`);
}

export function signedOutPage(): string {
  return layout('Signed out', '<h1>You signed out of your account</h1>\n<p>It\'s a good idea to close all browser windows.</p>');
}
