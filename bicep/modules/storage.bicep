// The storage account shared by the Functions host and the connector, with no account keys in use:
// everyone signs in with Entra ID (allowSharedKeyAccess: false).
//
// Tables, queues and blob containers are created HERE, not by the app: provisionStorage
// (src/store/provision-storage.ts) runs only in the local start-up (local/start.ts), never in
// functions/startup.ts, so a deployed app expects them to exist. The names below mirror
// src/store/storage-layout.ts; test/unit/bicep-templates.test.ts keeps the two in step.
// The host creates the `<queue>-poison` queues itself when it first moves a message there.

param name string
param location string
param tags object

@description('The blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

var tableNames = [
  'customers'
  'connections'
  'mailboxes'
  'events'
  'apikeys'
  'jwtissuers'
  'webhookendpoints'
  'signinstates'
  'connectresults'
  'connectionhealth'
  'apphealth'
  'outbox'
  'idempotencykeys'
  'sendgovernor'
  'receivestate'
  'inbox'
  'graphsubscriptions'
]

var queueNames = [
  'deliver-event'
  'delivery-sweep'
  'refresh-connection'
  'refresh-scan'
  'send-mail'
  'poll-scan'
  'poll-mailbox'
  'graph-notification'
]

var containerNames = [
  'payloads'
  'outbox'
  'uploads'
  'inbox'
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in containerNames: {
    parent: blobService
    name: container
    properties: { publicAccess: 'None' }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for queue in queueNames: {
    parent: queueService
    name: queue
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for table in tableNames: {
    parent: tableService
    name: table
  }
]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
