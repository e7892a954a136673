/**
 * Whether this process runs in Azure. The App Service platform, which hosts every Functions plan,
 * sets these for the app's processes; Core Tools and the local host set neither.
 */
export function isRunningInAzure(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.WEBSITE_INSTANCE_ID || env.WEBSITE_OWNER_NAME);
}
