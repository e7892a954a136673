// The connector in the vendor's subscription: `azd up` (azure.yaml) provisions this and deploys
// the app. One resource group holds a Function App on Flex Consumption, its storage, Key Vault,
// Log Analytics + Application Insights, alerts and a workbook, and one user-assigned managed
// identity that every part signs in as. No secret is created or stored in an app setting.
targetScope = 'subscription'

@minLength(1)
@maxLength(32)
@description('azd environment name; names the resource group and seeds the resource names.')
param environmentName string

@minLength(1)
@description('Azure region for every resource (Flex Consumption must be offered there).')
param location string

@description('Application (client) id of the vendor\'s multi-tenant Entra app registration. Empty: deploy without it, set it and deploy again after registering the app with the redirect URIs this deployment outputs.')
param entraClientId string = ''

@allowed(['global', 'usgov', 'usgovdod', 'china'])
param entraCloud string = 'global'

@description('Tenant the app is registered in (optional): lets the credential check read the default app\'s secret or certificate expiry from Graph. With the managed identity as its credential (as deployed here) there is nothing to expire, so this matters only if you switch the app to a secret or certificate.')
param entraHomeTenantId string = ''

@description('More app registrations as ENTRA_APPS JSON (optional), e.g. one per national cloud.')
param entraApps string = ''

@description('Shown to customer administrators on the consent pages.')
param vendorName string

@description('The connector\'s public https origin when it has a custom domain; empty: https://<function app>.azurewebsites.net.')
param publicBaseUrl string = ''

@description('Resource password credentials (ROPC) bypass MFA and Conditional Access: test tenants only.')
param allowRopc bool = false

@allowed(['debug', 'info', 'warn', 'error'])
param logLevel string = 'info'

// Tuning; an empty string keeps the connector's default (see README, Configuration).
param consentLinkTtl string = ''
param connectionDegradedAfter string = ''
param sendRatePerMinute string = ''
param sendConcurrency string = ''
param maxMessageMb string = ''
param sendRetryWindow string = ''
param receiveRetention string = ''
@allowed(['', 'on', 'off'])
param graphNotifications string = ''
param webhookRetrySchedule string = ''

@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100
@description('Always-ready instances for the HTTP functions (consent pages, vendor API); 0 scales from zero.')
@minValue(0)
param alwaysReadyHttpInstances int = 0

@description('Resource id of an existing action group the alerts notify; empty: alerts show in the portal only.')
param actionGroupId string = ''
param throttlingThreshold int = 20
param webhookFailureThreshold int = 5
param functionErrorThreshold int = 5
param logRetentionInDays int = 30

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))
var names = {
  identity: 'id-${environmentName}'
  storage: 'st${token}'
  keyVault: 'kv-${token}'
  logAnalytics: 'log-${environmentName}'
  applicationInsights: 'appi-${environmentName}'
  plan: 'plan-${environmentName}'
  functionApp: 'func-${environmentName}-${token}'
}
var deploymentContainerName = 'app-package'
var baseUrl = empty(publicBaseUrl) ? 'https://${names.functionApp}.azurewebsites.net' : publicBaseUrl

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: names.identity, location: location, tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: names.storage, location: location, tags: tags, deploymentContainerName: deploymentContainerName }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: { name: names.keyVault, location: location, tags: tags }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: names.logAnalytics
    applicationInsightsName: names.applicationInsights
    location: location
    tags: tags
    retentionInDays: logRetentionInDays
  }
}

module roles 'modules/role-assignments.bicep' = {
  name: 'role-assignments'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module functionApp 'modules/function-app.bicep' = {
  name: 'function-app'
  scope: rg
  // The host reaches storage as the identity from its first start: roles first.
  dependsOn: [roles]
  params: {
    name: names.functionApp
    planName: names.plan
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageBlobEndpoint: storage.outputs.blobEndpoint
    storageQueueEndpoint: storage.outputs.queueEndpoint
    storageTableEndpoint: storage.outputs.tableEndpoint
    deploymentContainerName: deploymentContainerName
    keyVaultUri: keyVault.outputs.uri
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    publicBaseUrl: baseUrl
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    alwaysReadyHttpInstances: alwaysReadyHttpInstances
    entraClientId: entraClientId
    entraCloud: entraCloud
    entraHomeTenantId: entraHomeTenantId
    entraApps: entraApps
    vendorName: vendorName
    allowRopc: allowRopc
    logLevel: logLevel
    consentLinkTtl: consentLinkTtl
    connectionDegradedAfter: connectionDegradedAfter
    sendRatePerMinute: sendRatePerMinute
    sendConcurrency: sendConcurrency
    maxMessageMb: maxMessageMb
    sendRetryWindow: sendRetryWindow
    receiveRetention: receiveRetention
    graphNotifications: graphNotifications
    webhookRetrySchedule: webhookRetrySchedule
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    location: location
    tags: tags
    actionGroupId: actionGroupId
    throttlingThreshold: throttlingThreshold
    webhookFailureThreshold: webhookFailureThreshold
    functionErrorThreshold: functionErrorThreshold
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    name: 'm365-connector-${environmentName}'
    displayName: 'M365 connector (${environmentName})'
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
  }
}

output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output PUBLIC_BASE_URL string = baseUrl
@description('Register these as Web redirect URIs of the Entra app.')
output REDIRECT_URIS array = [
  '${baseUrl}/api/connect/callback'
  '${baseUrl}/api/connect/admin-callback'
]
@description('Client id of the managed identity (AZURE_CLIENT_ID, ENTRA_FIC_CLIENT_ID).')
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
@description('Object (principal) id of the managed identity: the subject of the Entra app\'s federated credential (audience api://AzureADTokenExchange).')
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output KEY_VAULT_URI string = keyVault.outputs.uri
@description('The storage account: the admin CLI reaches the deployment through it (AzureWebJobsStorage__accountName).')
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
