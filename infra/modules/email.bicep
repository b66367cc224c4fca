// Azure Communication Services email: the email service with an Azure-managed sender domain, the
// Communication Services resource the app sends through (linked to that domain), and the app's
// managed identity allowed to send. The outbox timer (functions/outbox-sender.ts) signs in with that
// identity (no connection string or key), using the endpoint and sender address this module outputs.
//
// The Azure-managed domain (<guid>.azurecomm.net) works without DNS and has low sending limits; a
// custom domain is an operator step (DNS verification), described in infra/README.md.

@description('Globally unique name of the Communication Services resource (its host name).')
param communicationServiceName string

param emailServiceName string
param tags object

@description('Where the email data is stored at rest, e.g. United States, Europe.')
param dataLocation string

@description('Principal id of the app\'s managed identity.')
param senderPrincipalId string

@description('Resource ids of verified custom domains to link as well (set up by operators, infra/README.md).')
param customDomainIds string[]

// Communication and Email Service Owner: the built-in role Microsoft documents for sending email with
// Microsoft Entra ID. Assigned on this Communication Services resource only.
var communicationAndEmailServiceOwnerRoleId = '09976791-48a7-449e-bb21-39d1a415f350'

resource emailService 'Microsoft.Communication/emailServices@2023-03-31' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource domain 'Microsoft.Communication/emailServices/domains@2023-03-31' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    // Links in our messages carry one-time secrets: never rewritten through a tracking redirector.
    userEngagementTracking: 'Disabled'
  }
}

resource sender 'Microsoft.Communication/emailServices/domains/senderUsernames@2023-03-31' = {
  parent: domain
  name: 'donotreply'
  properties: {
    username: 'DoNotReply'
    displayName: 'Atlanta Academy of Dental Assisting'
  }
}

resource communication 'Microsoft.Communication/communicationServices@2023-03-31' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: concat([domain.id], customDomainIds)
  }
}

resource appSendsEmail 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(communication.id, senderPrincipalId, communicationAndEmailServiceOwnerRoleId)
  scope: communication
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', communicationAndEmailServiceOwnerRoleId)
    principalId: senderPrincipalId
    principalType: 'ServicePrincipal'
  }
}

@description('ACS_EMAIL_ENDPOINT: https://<name>.<geography>.communication.azure.com')
output endpoint string = 'https://${communication.properties.hostName}'
@description('ACS_EMAIL_SENDER: DoNotReply@<guid>.azurecomm.net')
output senderAddress string = '${sender.properties.username}@${domain.properties.mailFromSenderDomain}'
output communicationServiceName string = communication.name
