// The connector's Function App on the Flex Consumption plan. The runtime (Node 22) lives in
// functionAppConfig, not in app settings; the app package is deployed to a blob container the
// app reads as its managed identity. No app setting holds a secret.

param name string
param planName string
param location string
param tags object

param identityId string
param identityClientId string
param storageBlobEndpoint string
param storageQueueEndpoint string
param storageTableEndpoint string
param deploymentContainerName string
param keyVaultUri string
param applicationInsightsConnectionString string

@description('The connector\'s public https origin; consent links and redirect URIs hang below it.')
param publicBaseUrl string

@minValue(512)
param instanceMemoryMB int
@minValue(1)
param maximumInstanceCount int
@description('Always-ready instances for the HTTP functions (0: none, the app scales from zero).')
@minValue(0)
param alwaysReadyHttpInstances int

@description('Settings from main.bicep, each a string; an empty string leaves the code\'s default.')
param entraClientId string
param entraCloud string
param entraHomeTenantId string
param entraApps string
param vendorName string
param allowRopc bool
param logLevel string
param consentLinkTtl string
param connectionDegradedAfter string
param sendRatePerMinute string
param sendConcurrency string
param maxMessageMb string
param sendRetryWindow string
param receiveRetention string
param graphNotifications string
param webhookRetrySchedule string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

// The service URIs as the Azure SDKs want them: without the trailing slash storage endpoints have.
var blobServiceUri = replace(storageBlobEndpoint, '.net/', '.net')
var queueServiceUri = replace(storageQueueEndpoint, '.net/', '.net')
var tableServiceUri = replace(storageTableEndpoint, '.net/', '.net')

var hostSettings = [
  // The Functions host and the connector share the storage account, reached as the managed identity.
  { name: 'AzureWebJobsStorage__blobServiceUri', value: blobServiceUri }
  { name: 'AzureWebJobsStorage__queueServiceUri', value: queueServiceUri }
  { name: 'AzureWebJobsStorage__tableServiceUri', value: tableServiceUri }
  { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
  { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
  { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: applicationInsightsConnectionString }
  { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
]

var connectorSettings = [
  { name: 'SECRET_STORE', value: 'keyvault' }
  { name: 'KEY_VAULT_URL', value: keyVaultUri }
  { name: 'AZURE_CLIENT_ID', value: identityClientId }
  { name: 'PUBLIC_BASE_URL', value: publicBaseUrl }
  { name: 'VENDOR_NAME', value: vendorName }
  { name: 'ALLOW_ROPC', value: allowRopc ? 'true' : 'false' }
  { name: 'LOG_LEVEL', value: logLevel }
  { name: 'SEND_RATE_PER_MINUTE', value: sendRatePerMinute }
  { name: 'SEND_CONCURRENCY', value: sendConcurrency }
  { name: 'MAX_MESSAGE_MB', value: maxMessageMb }
  { name: 'SEND_RETRY_WINDOW', value: sendRetryWindow }
  { name: 'RECEIVE_RETENTION', value: receiveRetention }
  { name: 'GRAPH_NOTIFICATIONS', value: graphNotifications }
  { name: 'WEBHOOK_RETRY_SCHEDULE', value: webhookRetrySchedule }
  { name: 'CONSENT_LINK_TTL', value: consentLinkTtl }
  { name: 'CONNECTION_DEGRADED_AFTER', value: connectionDegradedAfter }
]

// Set only with an app registration: ENTRA_* settings without ENTRA_CLIENT_ID stop the app at start-up.
var entraSettings = empty(entraClientId)
  ? []
  : [
      { name: 'ENTRA_CLIENT_ID', value: entraClientId }
      { name: 'ENTRA_CLOUD', value: entraCloud }
      // The app's credential is this managed identity, trusted as a federated credential: no secret.
      { name: 'ENTRA_CREDENTIAL', value: 'managed-identity' }
      { name: 'ENTRA_FIC_CLIENT_ID', value: identityClientId }
      { name: 'ENTRA_HOME_TENANT_ID', value: entraHomeTenantId }
      { name: 'ENTRA_APPS', value: entraApps }
    ]

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      appSettings: concat(hostSettings, connectorSettings, entraSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
        alwaysReady: alwaysReadyHttpInstances > 0 ? [{ name: 'http', instanceCount: alwaysReadyHttpInstances }] : []
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

resource basicPublishingFtp 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: { allow: false }
}

resource basicPublishingScm 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: { allow: false }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
